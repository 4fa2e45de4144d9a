#include "vision/preprocess.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "io/json_file.h"
#include "visionllm/error.h"

// Bit-exactness with Pillow needs the filter polynomial evaluated as written: no fused multiply-adds.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace visionllm::vision {

namespace {

void check_image(const io::Image & img, const char * fn) {
    if (img.width <= 0 || img.height <= 0) fail(fn, ": empty image (", img.width, "x", img.height, ")");
    if (img.width > io::kMaxImageSide || img.height > io::kMaxImageSide || img.width * img.height > io::kMaxImagePixels)
        fail(fn, ": image of ", img.width, "x", img.height, " pixels is too large");
    if (img.channels != 1 && img.channels != 3)
        fail(fn, ": expected a 1- or 3-channel image, got ", img.channels, " channels");
    if (img.data.size() != size_t(img.width * img.height * img.channels))
        fail(fn, ": image holds ", img.data.size(), " bytes, expected ", img.width, "x", img.height, "x", img.channels);
}

// ---------------------------------------------------------------------------------------------------------------
// Python's set of (i, j) tuples, enough of CPython (3.8+) to know its iteration order

// hash((a, b)) for small non-negative ints (hash(int) == int): the xxHash-based tuplehash of CPython 3.8+
uint64_t py_tuple_hash(uint64_t a, uint64_t b) {
    const uint64_t p1 = 11400714785074694791ULL, p2 = 14029467366897019727ULL, p5 = 2870177450012600261ULL;
    uint64_t acc = p5;
    for (uint64_t lane : {a, b}) {
        acc += lane * p2;
        acc = (acc << 31) | (acc >> 33);
        acc *= p1;
    }
    acc += uint64_t(2) ^ (p5 ^ 3527539ULL);
    if (acc == ~uint64_t(0)) return 1546275796;
    return acc;
}

class PySet {
public:
    void add(int64_t i, int64_t j) {
        const uint64_t h = py_tuple_hash(uint64_t(i), uint64_t(j));
        // set_add_entry: probe for the key or the first empty slot
        size_t mask = table_.size() - 1, idx = size_t(h) & mask;
        uint64_t perturb = h;
        while (true) {
            const int probes = idx + kLinearProbes <= mask ? kLinearProbes : 0;
            for (int p = 0; p <= probes; ++p) {
                Slot & s = table_[idx + size_t(p)];
                if (!s.used) {
                    s = {true, h, i, j};
                    ++fill_;
                    if (fill_ * 5 >= mask * 3) resize(fill_ > 50000 ? fill_ * 2 : fill_ * 4);
                    return;
                }
                if (s.hash == h && s.i == i && s.j == j) return;  // already there
            }
            perturb >>= 5;
            idx = (idx * 5 + 1 + size_t(perturb)) & mask;
        }
    }
    // iteration order: table order
    std::vector<Grid> items() const {
        std::vector<Grid> out;
        for (const Slot & s : table_)
            if (s.used) out.push_back({s.i, s.j});
        return out;
    }

private:
    static constexpr int kLinearProbes = 9;
    struct Slot {
        bool used = false;
        uint64_t hash = 0;
        int64_t i = 0, j = 0;
    };
    // set_table_resize: the smallest power of two > min_used, entries re-inserted in old table order
    void resize(size_t min_used) {
        size_t n = 8;
        while (n <= min_used) n <<= 1;
        std::vector<Slot> old(n);
        old.swap(table_);
        const size_t mask = n - 1;
        for (const Slot & s : old) {
            if (!s.used) continue;
            size_t idx = size_t(s.hash) & mask;
            uint64_t perturb = s.hash;
            while (true) {  // set_insert_clean
                bool placed = false;
                const int probes = idx + kLinearProbes <= mask ? kLinearProbes : 0;
                for (int p = 0; p <= probes; ++p) {
                    if (!table_[idx + size_t(p)].used) {
                        table_[idx + size_t(p)] = s;
                        placed = true;
                        break;
                    }
                }
                if (placed) break;
                perturb >>= 5;
                idx = (idx * 5 + 1 + size_t(perturb)) & mask;
            }
        }
    }
    std::vector<Slot> table_ = std::vector<Slot>(8);
    size_t fill_ = 0;  // no deletions, so fill == used
};

// ---------------------------------------------------------------------------------------------------------------
// Pillow's bicubic resampling (libImaging/Resample.c), 8 bits per channel

constexpr int kPrecisionBits = 32 - 8 - 2;

double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

uint8_t clip8(int v) {
    const int s = v >> kPrecisionBits;  // arithmetic shift, as in C
    return uint8_t(s < 0 ? 0 : s > 255 ? 255 : s);
}

// per output pixel: the first input pixel, the count, and `ksize` fixed-point weights
struct Coeffs {
    int ksize = 0;
    std::vector<int> first, count;
    std::vector<int32_t> k;
};

Coeffs precompute_coeffs(int in_size, int out_size) {
    const double support_of_filter = 2.0;  // bicubic
    // the box is (0, in_size) in floats: (double)(in1 - in0) / outSize
    const double scale = double(float(in_size) - 0.0f) / out_size;
    const double filterscale = scale < 1.0 ? 1.0 : scale;
    const double support = support_of_filter * filterscale;
    Coeffs c;
    c.ksize = int(std::ceil(support)) * 2 + 1;
    c.first.resize(size_t(out_size));
    c.count.resize(size_t(out_size));
    c.k.assign(size_t(out_size) * size_t(c.ksize), 0);
    std::vector<double> w(size_t(c.ksize));
    const double inv_filterscale = 1.0 / filterscale;
    for (int xx = 0; xx < out_size; ++xx) {
        const double center = 0.0f + (xx + 0.5) * scale;
        double ww = 0.0;
        int xmin = int(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = int(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; ++x) {
            const double v = bicubic_filter((x + xmin - center + 0.5) * inv_filterscale);
            w[size_t(x)] = v;
            ww += v;
        }
        if (ww != 0.0)
            for (int x = 0; x < xmax; ++x) w[size_t(x)] /= ww;
        int32_t * k = &c.k[size_t(xx) * size_t(c.ksize)];
        for (int x = 0; x < xmax; ++x) {  // normalize_coeffs_8bpc
            const double p = w[size_t(x)];
            k[x] = p < 0 ? int(-0.5 + p * (1 << kPrecisionBits)) : int(0.5 + p * (1 << kPrecisionBits));
        }
        c.first[size_t(xx)] = xmin;
        c.count[size_t(xx)] = xmax;
    }
    return c;
}

// out rows 0..out_h-1 come from input rows offset..offset+out_h-1
void resample_horizontal(const io::Image & in, io::Image & out, int offset, const Coeffs & c) {
    const int64_t ch = in.channels;
    at::parallel_for(0, out.height, 16, [&](int64_t y0, int64_t y1) {
        for (int64_t yy = y0; yy < y1; ++yy) {
            const uint8_t * src = in.row(yy + offset);
            uint8_t * dst = out.row(yy);
            for (int64_t xx = 0; xx < out.width; ++xx) {
                const int xmin = c.first[size_t(xx)], xmax = c.count[size_t(xx)];
                const int32_t * k = &c.k[size_t(xx) * size_t(c.ksize)];
                const uint8_t * s = src + int64_t(xmin) * ch;
                if (ch == 3) {  // the three channels together, as Pillow does
                    int s0 = 1 << (kPrecisionBits - 1), s1 = s0, s2 = s0;
                    for (int x = 0; x < xmax; ++x) {
                        const int kx = k[x];
                        s0 += s[3 * x + 0] * kx;
                        s1 += s[3 * x + 1] * kx;
                        s2 += s[3 * x + 2] * kx;
                    }
                    dst[xx * 3 + 0] = clip8(s0);
                    dst[xx * 3 + 1] = clip8(s1);
                    dst[xx * 3 + 2] = clip8(s2);
                } else {
                    int s0 = 1 << (kPrecisionBits - 1);
                    for (int x = 0; x < xmax; ++x) s0 += s[x] * k[x];
                    dst[xx] = clip8(s0);
                }
            }
        }
    });
}

void resample_vertical(const io::Image & in, io::Image & out, const Coeffs & c, int shift) {
    const int64_t rowlen = in.width * in.channels;
    at::parallel_for(0, out.height, 16, [&](int64_t y0, int64_t y1) {
        std::vector<int> ss(static_cast<size_t>(rowlen));
        for (int64_t yy = y0; yy < y1; ++yy) {
            const int ymin = c.first[size_t(yy)] - shift, ymax = c.count[size_t(yy)];
            const int32_t * k = &c.k[size_t(yy) * size_t(c.ksize)];
            std::fill(ss.begin(), ss.end(), 1 << (kPrecisionBits - 1));
            for (int y = 0; y < ymax; ++y) {  // same sums as Pillow's per-pixel loop, in row order
                const uint8_t * src = in.row(y + ymin);
                const int32_t ky = k[y];
                for (int64_t i = 0; i < rowlen; ++i) ss[size_t(i)] += src[i] * ky;
            }
            uint8_t * dst = out.row(yy);
            for (int64_t i = 0; i < rowlen; ++i) dst[i] = clip8(ss[size_t(i)]);
        }
    });
}

io::Image blank(int64_t w, int64_t h, int64_t ch) {
    io::Image img;
    img.width = w;
    img.height = h;
    img.channels = ch;
    img.data.assign(size_t(w * h * ch), 0);
    return img;
}

io::Image to_rgb(const io::Image & img) {
    if (img.channels == 3) return img;
    io::Image out = blank(img.width, img.height, 3);
    for (size_t i = 0; i < img.data.size(); ++i) out.data[3 * i] = out.data[3 * i + 1] = out.data[3 * i + 2] = img.data[i];
    return out;
}

io::Image crop(const io::Image & img, int64_t x0, int64_t y0, int64_t w, int64_t h) {
    io::Image out = blank(w, h, img.channels);
    for (int64_t y = 0; y < h; ++y)
        std::memcpy(out.row(y), img.row(y0 + y) + x0 * img.channels, size_t(w * img.channels));
    return out;
}

int64_t floordiv(int64_t a, int64_t b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

// transformers' center_crop on an HWC uint8 image, zero padding included
io::Image center_crop(const io::Image & img, int64_t ch, int64_t cw) {
    const int64_t H = img.height, W = img.width;
    int64_t top = floordiv(H - ch, 2), left = floordiv(W - cw, 2);
    if (top >= 0 && top + ch <= H && left >= 0 && left + cw <= W) return crop(img, left, top, cw, ch);
    const int64_t nh = std::max(ch, H), nw = std::max(cw, W);
    io::Image padded = blank(nw, nh, img.channels);
    const int64_t tp = (nh - H) / 2, lp = (nw - W) / 2;
    for (int64_t y = 0; y < H; ++y)
        std::memcpy(padded.row(y + tp) + lp * img.channels, img.row(y), size_t(W * img.channels));
    top += tp;
    left += lp;
    const int64_t y0 = std::max<int64_t>(0, top), y1 = std::min(nh, top + ch);
    const int64_t x0 = std::max<int64_t>(0, left), x1 = std::min(nw, left + cw);
    if (y1 - y0 != ch || x1 - x0 != cw)  // transformers would return a smaller, unstackable array here
        fail("CLIP preprocessing: centre-cropping a ", W, "x", H, " image to ", cw, "x", ch,
             " gives a ragged crop in the reference (size smaller than crop_size by an odd amount); unsupported");
    return crop(padded, x0, y0, cw, ch);
}

}  // namespace

// -------------------------------------------------------------------------------------------------------------------

std::vector<Grid> candidate_grids(int64_t max_tiles) {
    if (max_tiles < 1 || max_tiles > kMaxTiles) fail("max_tiles must be in [1, ", kMaxTiles, "], got ", max_tiles);
    PySet set;
    for (int64_t n = 1; n <= max_tiles; ++n)
        for (int64_t i = 1; i <= n; ++i)
            for (int64_t j = 1; j <= n; ++j)
                if (i * j <= max_tiles) set.add(i, j);
    std::vector<Grid> g = set.items();
    std::stable_sort(g.begin(), g.end(), [](const Grid & a, const Grid & b) { return a.tiles() < b.tiles(); });
    return g;
}

Grid choose_grid(int64_t width, int64_t height, int64_t image_size, int64_t max_tiles) {
    if (width <= 0 || height <= 0) fail("choose_grid: invalid image size ", width, "x", height);
    if (image_size <= 0) fail("choose_grid: image_size must be positive, got ", image_size);
    const double aspect = double(width) / double(height);
    const double area = double(width) * double(height);
    Grid best{1, 1};
    double best_diff = INFINITY;
    for (const Grid & g : candidate_grids(max_tiles)) {
        const double diff = std::fabs(aspect - double(g.cols) / double(g.rows));
        if (diff < best_diff) {
            best = g;
            best_diff = diff;
        } else if (diff == best_diff) {
            if (area > 0.5 * double(image_size) * double(image_size) * double(g.cols) * double(g.rows)) best = g;
        }
    }
    return best;
}

io::Image resize_bicubic(const io::Image & src, int64_t width, int64_t height) {
    check_image(src, "resize_bicubic");
    if (width <= 0 || height <= 0 || width > io::kMaxImageSide || height > io::kMaxImageSide ||
        width * height > io::kMaxImagePixels)
        fail("resize_bicubic: invalid target size ", width, "x", height);
    if (width == src.width && height == src.height) return src;
    const bool need_h = width != src.width, need_v = height != src.height;
    const Coeffs cv = precompute_coeffs(int(src.height), int(height));
    // the rows of the source the vertical pass will read
    const int ybox_first = cv.first.front(), ybox_last = cv.first.back() + cv.count.back();
    if (!need_h) {
        io::Image out = blank(width, height, src.channels);
        resample_vertical(src, out, cv, 0);
        return out;
    }
    const Coeffs chz = precompute_coeffs(int(src.width), int(width));
    io::Image tmp = blank(width, ybox_last - ybox_first, src.channels);
    resample_horizontal(src, tmp, ybox_first, chz);
    if (!need_v) return tmp;
    io::Image out = blank(width, height, src.channels);
    resample_vertical(tmp, out, cv, ybox_first);
    return out;
}

std::vector<io::Image> dynamic_preprocess(const io::Image & img, int64_t image_size, int64_t max_tiles, Grid * grid) {
    check_image(img, "dynamic_preprocess");
    if (image_size <= 0 || image_size > 4096) fail("dynamic_preprocess: image_size must be in [1, 4096], got ", image_size);
    const io::Image rgb = to_rgb(img);
    const Grid g = choose_grid(rgb.width, rgb.height, image_size, max_tiles);
    if (grid) *grid = g;
    const io::Image resized = resize_bicubic(rgb, image_size * g.cols, image_size * g.rows);
    std::vector<io::Image> tiles;
    for (int64_t t = 0; t < g.tiles(); ++t)
        tiles.push_back(crop(resized, (t % g.cols) * image_size, (t / g.cols) * image_size, image_size, image_size));
    if (tiles.size() != 1) tiles.push_back(resize_bicubic(rgb, image_size, image_size));
    return tiles;
}

// -------------------------------------------------------------------------------------------------------------------

ImageProcessorConfig parse_image_processor_config(const std::string & json_text, const std::string & what) {
    using json = nlohmann::json;
    json j;
    try {
        j = json::parse(json_text);
    } catch (const json::parse_error & e) {
        fail(what, ": invalid JSON: ", e.what());
    }
    if (!j.is_object()) fail(what, ": expected a JSON object, got ", j.type_name());
    ImageProcessorConfig c;
    auto has = [&](const char * k) { return j.contains(k) && !j[k].is_null(); };
    auto field = [&](const char * k) { return what + ": " + k; };
    auto pos_int = [&](const json & v, const std::string & name) -> int64_t {
        if (!v.is_number_integer()) {
            if (v.is_number_float()) {
                const double d = v.get<double>();
                if (std::isfinite(d) && d == std::floor(d) && d > 0 && d < 1e6) return int64_t(d);
            }
            fail(name, ": expected a positive integer, got ", v.dump());
        }
        const int64_t x = v.get<int64_t>();
        if (x <= 0 || x > 4096) fail(name, ": must be in [1, 4096], got ", x);
        return x;
    };
    auto boolean = [&](const char * k, bool & out) {
        if (!has(k)) return;
        if (!j[k].is_boolean()) fail(field(k), ": expected true or false, got ", j[k].dump());
        out = j[k].get<bool>();
    };
    auto triple = [&](const char * k, std::array<float, 3> & out) {
        if (!has(k)) return;
        const json & v = j[k];
        if (v.is_number()) {
            out.fill(float(v.get<double>()));
            return;
        }
        if (!v.is_array() || v.size() != 3) fail(field(k), ": expected a list of 3 numbers, got ", v.dump());
        for (size_t i = 0; i < 3; ++i) {
            if (!v[i].is_number()) fail(field(k), ": expected a list of 3 numbers, got ", v.dump());
            out[i] = float(v[i].get<double>());
        }
    };
    if (has("size")) {
        const json & v = j["size"];
        if (v.is_object()) {
            if (!v.contains("shortest_edge"))
                fail(field("size"), ": CLIPImageProcessor resizes by {\"shortest_edge\": n}, got ", v.dump());
            c.size = pos_int(v["shortest_edge"], field("size") + ".shortest_edge");
        } else {
            c.size = pos_int(v, field("size"));
        }
    }
    if (has("crop_size")) {
        const json & v = j["crop_size"];
        if (v.is_object()) {
            if (!v.contains("height") || !v.contains("width"))
                fail(field("crop_size"), ": expected {\"height\": n, \"width\": n}, got ", v.dump());
            const int64_t h = pos_int(v["height"], field("crop_size") + ".height");
            const int64_t w = pos_int(v["width"], field("crop_size") + ".width");
            if (h != w) fail(field("crop_size"), ": only square crops are supported, got ", w, "x", h);
            c.crop_size = h;
        } else {
            c.crop_size = pos_int(v, field("crop_size"));
        }
    }
    triple("image_mean", c.mean);
    triple("image_std", c.std);
    for (size_t i = 0; i < 3; ++i)
        if (!(std::isfinite(c.std[i]) && c.std[i] != 0.0f) || !std::isfinite(c.mean[i]))
            fail(field("image_std"), ": mean and std must be finite and std nonzero");
    if (has("rescale_factor")) {
        if (!j["rescale_factor"].is_number())
            fail(field("rescale_factor"), ": expected a number, got ", j["rescale_factor"].dump());
        c.rescale_factor = j["rescale_factor"].get<double>();
        if (!std::isfinite(c.rescale_factor)) fail(field("rescale_factor"), ": must be finite");
    }
    boolean("do_resize", c.do_resize);
    boolean("do_center_crop", c.do_center_crop);
    boolean("do_rescale", c.do_rescale);
    boolean("do_normalize", c.do_normalize);
    if (has("resample")) {
        if (!j["resample"].is_number_integer()) fail(field("resample"), ": expected an integer, got ", j["resample"].dump());
        if (j["resample"].get<int64_t>() != 3)
            fail(field("resample"), ": only 3 (bicubic, CLIP's) is implemented, got ", j["resample"].dump());
    }
    return c;
}

ImageProcessorConfig load_image_processor_config(const std::string & path) {
    return parse_image_processor_config(io::read_text_file(path), path);
}

at::Tensor clip_pixel_values(const std::vector<io::Image> & tiles, const ImageProcessorConfig & cfg) {
    if (tiles.empty()) fail("clip_pixel_values: no tiles");
    const int64_t S = cfg.crop_size;
    if (S <= 0 || cfg.size <= 0) fail("clip_pixel_values: size and crop_size must be positive");
    at::Tensor out = at::empty({int64_t(tiles.size()), 3, S, S}, at::kFloat);
    float * o = out.data_ptr<float>();
    for (size_t t = 0; t < tiles.size(); ++t) {
        check_image(tiles[t], "clip_pixel_values");
        io::Image img = to_rgb(tiles[t]);
        if (cfg.do_resize) {
            // get_resize_output_image_size(default_to_square=False): the short side becomes `size`, the long side
            // int(size * long / short)
            const int64_t shorter = std::min(img.width, img.height), longer = std::max(img.width, img.height);
            const int64_t new_long = int64_t(double(cfg.size * longer) / double(shorter));
            const int64_t w = img.width <= img.height ? cfg.size : new_long;
            const int64_t h = img.width <= img.height ? new_long : cfg.size;
            img = resize_bicubic(img, w, h);
        }
        if (cfg.do_center_crop) img = center_crop(img, S, S);
        if (img.width != S || img.height != S)
            fail("clip_pixel_values: tile ", t, " is ", img.width, "x", img.height, " after resize/crop, expected ", S,
                 "x", S, " (do_center_crop is off)");
        float * dst = o + int64_t(t) * 3 * S * S;
        for (int64_t c = 0; c < 3; ++c) {
            const float mean = cfg.mean[size_t(c)], sd = cfg.std[size_t(c)];
            float lut[256];
            for (int v = 0; v < 256; ++v) {
                float x = cfg.do_rescale ? float(double(v) * cfg.rescale_factor) : float(v);
                if (cfg.do_normalize) x = (x - mean) / sd;
                lut[v] = x;
            }
            float * plane = dst + c * S * S;
            for (int64_t i = 0; i < S * S; ++i) plane[i] = lut[img.data[size_t(i * 3 + c)]];
        }
    }
    return out;
}

PreprocessedImage preprocess_anyres(const io::Image & img, const ImageProcessorConfig & cfg, int64_t max_tiles) {
    PreprocessedImage r;
    r.width = img.width;
    r.height = img.height;
    std::vector<io::Image> tiles = dynamic_preprocess(img, cfg.crop_size, max_tiles, &r.grid);
    r.pixel_values = clip_pixel_values(tiles, cfg);
    r.global = std::move(tiles.back());
    return r;
}

}  // namespace visionllm::vision
