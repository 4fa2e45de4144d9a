// COCO run-length masks: our own implementation of the semantics of pycocotools' maskApi (see mask.h).
#include "eval/mask.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "visionllm/error.h"

namespace visionllm::eval {

namespace {

// a polygon's boundary, upsampled 5x, is walked point by point: bound the work (and memory) for absurd inputs
constexpr int64_t kMaxBoundaryPoints = int64_t(1) << 27;
constexpr double kMaxCoordinate = 1e8;

void check_size(int64_t h, int64_t w, const char * what) {
    VLLM_CHECK(h >= 0 && w >= 0 && h <= (int64_t(1) << 31) / std::max<int64_t>(w, 1), what, ": mask size ", h, " x ", w,
               " is negative or too large");
}

}  // namespace

Rle rle_encode(const uint8_t * mask, int64_t h, int64_t w) {
    check_size(h, w, "rle_encode");
    Rle r;
    r.h = h;
    r.w = w;
    const int64_t n = h * w;
    uint8_t p = 0;
    uint32_t c = 0;
    for (int64_t j = 0; j < n; ++j) {
        const uint8_t v = mask[j] ? 1 : 0;
        if (v != p) {
            r.counts.push_back(c);
            c = 0;
            p = v;
        }
        ++c;
    }
    r.counts.push_back(c);
    return r;
}

std::vector<uint8_t> rle_decode(const Rle & r) {
    std::vector<uint8_t> m;
    m.reserve(size_t(r.h * r.w));
    uint8_t v = 0;
    for (uint32_t c : r.counts) {
        VLLM_CHECK(int64_t(m.size()) + c <= r.h * r.w, "rle_decode: the counts cover more than the mask's ", r.h, " x ",
                   r.w, " pixels");
        m.insert(m.end(), c, v);
        v = !v;
    }
    VLLM_CHECK(int64_t(m.size()) == r.h * r.w, "rle_decode: the counts cover ", m.size(), " pixels, the mask has ",
               r.h * r.w);
    return m;
}

uint32_t rle_area(const Rle & r) {
    uint32_t a = 0;
    for (size_t j = 1; j < r.counts.size(); j += 2) a += r.counts[j];
    return a;
}

void rle_to_bbox(const Rle & r, double bb[4]) {
    // pycocotools >= 2.0.3 (its 2021 fix): the extent of the non-empty runs of ones; a run crossing a column
    // boundary covers every row. uint32 arithmetic as there (an RLE whose runs of ones are all empty gives
    // pycocotools' wrapped-around sizes)
    const uint32_t h = uint32_t(r.h), w = uint32_t(r.w);
    const size_t m = r.counts.size() / 2 * 2;
    if (m == 0 || h == 0) {
        bb[0] = bb[1] = bb[2] = bb[3] = 0;
        return;
    }
    uint32_t xs = w, ys = h, xe = 0, ye = 0, cc = 0;
    for (size_t j = 0; j < m; ++j) {
        const uint32_t start = cc;
        cc += r.counts[j];
        if (j % 2 == 0 || r.counts[j] == 0) continue;
        const uint32_t y0 = start % h, x0 = (start - y0) / h;
        const uint32_t y1 = (cc - 1) % h, x1 = (cc - 1 - y1) / h;
        xs = std::min(xs, x0);
        xe = std::max(xe, x1);
        if (x0 < x1) {
            ys = 0;
            ye = h - 1;
        } else {
            ys = std::min(ys, y0);
            ye = std::max(ye, y1);
        }
    }
    bb[0] = xs;
    bb[2] = uint32_t(xe - xs + 1);
    bb[1] = ys;
    bb[3] = uint32_t(ye - ys + 1);
}

Rle rle_from_bbox(const double bb[4], int64_t h, int64_t w) {
    const double xs = bb[0], xe = xs + bb[2], ys = bb[1], ye = ys + bb[3];
    const double xy[8] = {xs, ys, xs, ye, xe, ye, xe, ys};
    return rle_from_polygon(xy, 4, h, w);
}

Rle rle_from_polygon(const double * xy, int64_t k, int64_t h, int64_t w) {
    check_size(h, w, "polygon");
    Rle r;
    r.h = h;
    r.w = w;
    if (k <= 0) {  // no vertices: an empty mask
        if (h * w > 0) r.counts.push_back(uint32_t(h * w));
        return r;
    }
    for (int64_t j = 0; j < 2 * k; ++j)
        VLLM_CHECK(std::isfinite(xy[j]) && std::fabs(xy[j]) <= kMaxCoordinate, "polygon: coordinate ", j, " (", xy[j],
                   ") is not finite or beyond +-", kMaxCoordinate);
    // upsample 5x and walk the boundary densely
    const double scale = 5;
    std::vector<int> x(size_t(k + 1)), y(size_t(k + 1));
    for (int64_t j = 0; j < k; ++j) x[size_t(j)] = int(scale * xy[j * 2 + 0] + .5);
    for (int64_t j = 0; j < k; ++j) y[size_t(j)] = int(scale * xy[j * 2 + 1] + .5);
    x[size_t(k)] = x[0];
    y[size_t(k)] = y[0];
    int64_t m = 0;
    for (int64_t j = 0; j < k; ++j) m += std::max(std::abs(x[j] - x[j + 1]), std::abs(y[j] - y[j + 1])) + 1;
    VLLM_CHECK(m <= kMaxBoundaryPoints, "polygon: its boundary is too long (", m / 5, " pixels)");
    std::vector<int> u, v;
    u.reserve(size_t(m));
    v.reserve(size_t(m));
    for (int64_t j = 0; j < k; ++j) {
        int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
        const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
        const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
        if (flip) {
            std::swap(xs, xe);
            std::swap(ys, ye);
        }
        const double s = dx >= dy ? double(ye - ys) / dx : double(xe - xs) / dy;
        if (dx >= dy) {
            for (int d = 0; d <= dx; ++d) {
                const int t = flip ? dx - d : d;
                u.push_back(t + xs);
                v.push_back(int(ys + s * t + .5));
            }
        } else {
            for (int d = 0; d <= dy; ++d) {
                const int t = flip ? dy - d : d;
                v.push_back(t + ys);
                u.push_back(int(xs + s * t + .5));
            }
        }
    }
    // the points where the boundary crosses a pixel column centre, downsampled
    std::vector<uint32_t> a;
    for (size_t j = 1; j < u.size(); ++j) {
        if (u[j] == u[j - 1]) continue;
        double xd = double(u[j] < u[j - 1] ? u[j] : u[j] - 1);
        xd = (xd + .5) / scale - .5;
        if (std::floor(xd) != xd || xd < 0 || xd > double(w - 1)) continue;
        double yd = double(v[j] < v[j - 1] ? v[j] : v[j - 1]);
        yd = (yd + .5) / scale - .5;
        if (yd < 0) {
            yd = 0;
        } else if (yd > double(h)) {
            yd = double(h);
        }
        yd = std::ceil(yd);
        a.push_back(uint32_t(int(xd) * int(h) + int(yd)));
    }
    a.push_back(uint32_t(h * w));
    std::sort(a.begin(), a.end());
    uint32_t p = 0;
    for (uint32_t & t : a) {
        const uint32_t cur = t;
        t -= p;
        p = cur;
    }
    size_t j = 0;
    r.counts.push_back(a[j++]);
    while (j < a.size()) {
        if (a[j] > 0) {
            r.counts.push_back(a[j++]);
        } else {
            ++j;
            if (j < a.size()) r.counts.back() += a[j++];
        }
    }
    return r;
}

Rle rle_merge(const std::vector<const Rle *> & rles, bool intersect) {
    Rle out;
    if (rles.empty()) return out;
    out = *rles[0];
    for (size_t i = 1; i < rles.size(); ++i) {
        const Rle & b = *rles[i];
        if (b.h != out.h || b.w != out.w) return Rle{};
        const Rle a = std::move(out);
        out = Rle{a.h, a.w, {}};
        if (a.counts.empty() || b.counts.empty()) continue;
        uint32_t ca = a.counts[0], cb = b.counts[0], cc = 0;
        bool v = false, va = false, vb = false;
        size_t ia = 1, ib = 1;
        uint64_t ct = 1;
        while (ct > 0) {
            const uint32_t c = std::min(ca, cb);
            cc += c;
            ct = 0;
            ca -= c;
            if (!ca && ia < a.counts.size()) {
                ca = a.counts[ia++];
                va = !va;
            }
            ct += ca;
            cb -= c;
            if (!cb && ib < b.counts.size()) {
                cb = b.counts[ib++];
                vb = !vb;
            }
            ct += cb;
            const bool vp = v;
            v = intersect ? (va && vb) : (va || vb);
            if (v != vp || ct == 0) {
                out.counts.push_back(cc);
                cc = 0;
            }
        }
    }
    return out;
}

std::string rle_to_string(const Rle & r) {
    std::string s;
    s.reserve(r.counts.size() * 2);
    for (size_t i = 0; i < r.counts.size(); ++i) {
        int64_t x = int64_t(r.counts[i]);
        if (i > 2) x -= int64_t(r.counts[i - 2]);
        bool more = true;
        while (more) {
            char c = char(x & 0x1f);
            x >>= 5;
            more = (c & 0x10) ? x != -1 : x != 0;
            if (more) c |= 0x20;
            s.push_back(char(c + 48));
        }
    }
    return s;
}

Rle rle_from_string(const std::string & s, int64_t h, int64_t w, const std::string & what) {
    check_size(h, w, what.c_str());
    Rle r;
    r.h = h;
    r.w = w;
    size_t p = 0;
    int64_t total = 0;
    while (p < s.size()) {
        int64_t x = 0;
        int k = 0;
        bool more = true;
        while (more) {
            VLLM_CHECK(p < s.size(), what, ": the compressed counts end in the middle of a number");
            const int c = int(static_cast<unsigned char>(s[p])) - 48;
            VLLM_CHECK(c >= 0 && c < 64, what, ": character ", p, " ('", s[p], "') is not a compressed RLE digit");
            VLLM_CHECK(k < 7, what, ": a count at character ", p, " is too long");
            x |= int64_t(c & 0x1f) << (5 * k);
            more = (c & 0x20) != 0;
            ++p;
            ++k;
            if (!more && (c & 0x10)) x |= int64_t(-1) * (int64_t(1) << (5 * k));
        }
        if (r.counts.size() > 2) x += int64_t(r.counts[r.counts.size() - 2]);
        VLLM_CHECK(x >= 0 && x <= h * w, what, ": run ", r.counts.size(), " has length ", x, " (the mask has ", h * w,
                   " pixels)");
        r.counts.push_back(uint32_t(x));
        total += x;
    }
    VLLM_CHECK(total == h * w, what, ": the runs cover ", total, " pixels but the size is ", h, " x ", w, " = ", h * w);
    return r;
}

double bbox_iou(const double d[4], const double g[4], bool crowd) {
    const double ga = g[2] * g[3], da = d[2] * d[3];
    const double w = std::fmin(d[2] + d[0], g[2] + g[0]) - std::fmax(d[0], g[0]);
    if (w <= 0) return 0;
    const double h = std::fmin(d[3] + d[1], g[3] + g[1]) - std::fmax(d[1], g[1]);
    if (h <= 0) return 0;
    const double i = w * h, u = crowd ? da : da + ga - i;
    return i / u;
}

double rle_iou(const Rle & d, const Rle & g, bool crowd) {
    double db[4], gb[4];
    rle_to_bbox(d, db);
    rle_to_bbox(g, gb);
    if (!(bbox_iou(db, gb, crowd) > 0)) return 0;
    if (d.h != g.h || d.w != g.w) return -1;
    uint32_t ca = d.counts[0], cb = g.counts[0], i = 0, u = 0;
    bool va = false, vb = false;
    size_t a = 1, b = 1;
    uint64_t ct = 1;
    while (ct > 0) {
        const uint32_t c = std::min(ca, cb);
        if (va || vb) {
            u += c;
            if (va && vb) i += c;
        }
        ct = 0;
        ca -= c;
        if (!ca && a < d.counts.size()) {
            ca = d.counts[a++];
            va = !va;
        }
        ct += ca;
        cb -= c;
        if (!cb && b < g.counts.size()) {
            cb = g.counts[b++];
            vb = !vb;
        }
        ct += cb;
    }
    if (i == 0) {
        u = 1;
    } else if (crowd) {
        u = rle_area(d);
    }
    return double(i) / double(u);
}

}  // namespace visionllm::eval
