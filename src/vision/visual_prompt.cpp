#include "vision/visual_prompt.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <utility>

#include "visionllm/error.h"

namespace visionllm::vision {

namespace {

// ---------------------------------------------------------------- bilinear resize (torch's index math)

// which source indices an output index reads with a positive weight (torch's
// compute_source_index_and_lambda for upsample_bilinear2d, align_corners=False, no scale given)
struct AxisMap {
    std::vector<int64_t> i0, i1;
    std::vector<char> use0, use1;
};

AxisMap axis_map(int64_t in, int64_t out) {
    AxisMap m;
    m.i0.resize(out);
    m.i1.resize(out);
    m.use0.resize(out);
    m.use1.resize(out);
    if (in == out) {  // torch copies
        for (int64_t o = 0; o < out; ++o) {
            m.i0[o] = m.i1[o] = o;
            m.use0[o] = 1;
            m.use1[o] = 0;
        }
        return m;
    }
    const float scale = static_cast<float>(in) / static_cast<float>(out);
    for (int64_t o = 0; o < out; ++o) {
        // scale * (dst + 0.5) - 0.5 as one FMA, as torch's AVX2 / AVX-512 kernels compute it
        float src = std::fma(scale, static_cast<float>(o) + 0.5f, -0.5f);
        if (src < 0.f) src = 0.f;
        const int64_t idx = std::min(static_cast<int64_t>(std::floor(src)), in - 1);
        const float lambda1 = std::min(std::max(src - static_cast<float>(idx), 0.f), 1.f);
        const float lambda0 = 1.f - lambda1;
        m.i0[o] = idx;
        m.i1[o] = idx + (idx < in - 1 ? 1 : 0);
        m.use0[o] = lambda0 > 0.f;
        m.use1[o] = lambda1 > 0.f;
    }
    return m;
}

// the output indices that read source index s with a positive weight; i0 is nondecreasing and
// i1 is i0 or i0 + 1, so they lie among the outputs with i0 in {s-1, s}
std::vector<int64_t> outputs_reading(const AxisMap & m, int64_t s) {
    const auto lo = std::lower_bound(m.i0.begin(), m.i0.end(), s - 1);
    const auto hi = std::upper_bound(m.i0.begin(), m.i0.end(), s);
    std::vector<int64_t> out;
    for (auto it = lo; it != hi; ++it) {
        const size_t o = size_t(it - m.i0.begin());
        if ((m.use0[o] && m.i0[o] == s) || (m.use1[o] && m.i1[o] == s)) out.push_back(int64_t(o));
    }
    return out;
}

// a dense W x H 1-channel mask -> [S, S] 0/1
at::Tensor resize_dense(const io::Image & mask, int64_t S) {
    const int64_t W = mask.width, H = mask.height;
    const AxisMap mx = axis_map(W, S), my = axis_map(H, S);
    at::Tensor out = at::zeros({S, S}, at::kFloat);
    float * o = out.data_ptr<float>();
    for (int64_t oy = 0; oy < S; ++oy) {
        const uint8_t * rows[2] = {my.use0[oy] ? mask.row(my.i0[oy]) : nullptr,
                                   my.use1[oy] ? mask.row(my.i1[oy]) : nullptr};
        for (int64_t ox = 0; ox < S; ++ox) {
            bool in = false;
            for (const uint8_t * r : rows) {
                if (!r) continue;
                if ((mx.use0[ox] && r[mx.i0[ox]] != 0) || (mx.use1[ox] && r[mx.i1[ox]] != 0)) in = true;
            }
            o[oy * S + ox] = in ? 1.f : 0.f;
        }
    }
    return out;
}

// sparse source pixels (x, y) of a W x H mask -> [S, S] 0/1, without building the W x H image
at::Tensor resize_sparse(const std::vector<std::pair<int64_t, int64_t>> & pixels, int64_t W, int64_t H, int64_t S) {
    const AxisMap mx = axis_map(W, S), my = axis_map(H, S);
    at::Tensor out = at::zeros({S, S}, at::kFloat);
    float * o = out.data_ptr<float>();
    for (const auto & [x, y] : pixels) {
        const std::vector<int64_t> oys = outputs_reading(my, y), oxs = outputs_reading(mx, x);
        for (int64_t oy : oys) {
            for (int64_t ox : oxs) o[oy * S + ox] = 1.f;
        }
    }
    return out;
}

// ---------------------------------------------------------------- prompts

void check_finite(const VisualPrompt & p, const std::string & who) {
    for (size_t i = 0; i < p.coords.size(); ++i) {
        VLLM_CHECK(std::isfinite(p.coords[i]), who, ": coordinate ", i + 1, " is not a finite number (", p.coords[i],
                   ")");
    }
}

// a point / vertex inside [0, W] x [0, H] -> its pixel (floor, with W -> W-1)
std::pair<int64_t, int64_t> pixel_of(double x, double y, int64_t W, int64_t H, const std::string & who,
                                     const std::string & what) {
    VLLM_CHECK(x >= 0 && x <= double(W) && y >= 0 && y <= double(H), who, ": ", what, " (", x, ", ", y,
               ") is outside the ", W, "x", H, " image (valid: 0 <= x <= ", W, ", 0 <= y <= ", H, ")");
    return {std::min(static_cast<int64_t>(std::floor(x)), W - 1), std::min(static_cast<int64_t>(std::floor(y)), H - 1)};
}

at::Tensor rasterize_box(const VisualPrompt & p, int64_t W, int64_t H, int64_t S, const std::string & who) {
    VLLM_CHECK(p.coords.size() == 4, who, ": a box needs 4 coordinates x1,y1,x2,y2, got ", p.coords.size());
    check_finite(p, who);
    const double x1 = p.coords[0], y1 = p.coords[1], x2 = p.coords[2], y2 = p.coords[3];
    VLLM_CHECK(x2 >= x1 && y2 >= y1, who, ": box (", x1, ", ", y1, ", ", x2, ", ", y2,
               ") has x2 < x1 or y2 < y1 (expected x1,y1,x2,y2 with x1 <= x2, y1 <= y2)");
    VLLM_CHECK(x2 >= 0 && y2 >= 0 && x1 <= double(W) && y1 <= double(H), who, ": box (", x1, ", ", y1, ", ", x2,
               ", ", y2, ") lies entirely outside the ", W, "x", H, " image");
    // as eval_region_classification.py: float32 tensor / (W, H, W, H) * S
    const float sz[4] = {float(W), float(H), float(W), float(H)};
    int64_t c[4];
    for (int i = 0; i < 4; ++i) {
        float v = static_cast<float>(p.coords[i]) / sz[i];
        v = v * static_cast<float>(S);
        // boxes_to_masks: max(min(v, S-1), 0), then int()
        v = std::max(std::min(v, static_cast<float>(S - 1)), 0.f);
        c[i] = static_cast<int64_t>(v);
    }
    at::Tensor out = at::zeros({S, S}, at::kFloat);
    if (c[3] >= c[1] && c[2] >= c[0]) {
        out.slice(0, c[1], c[3] + 1).slice(1, c[0], c[2] + 1).fill_(1.f);
    }
    return out;
}

// Bresenham from (x0, y0) to (x1, y1), both ends included
void draw_line(int64_t x0, int64_t y0, int64_t x1, int64_t y1, std::vector<std::pair<int64_t, int64_t>> & out) {
    const int64_t dx = std::llabs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    const int64_t dy = -std::llabs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int64_t err = dx + dy;
    for (;;) {
        out.emplace_back(x0, y0);
        if (x0 == x1 && y0 == y1) break;
        const int64_t e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

at::Tensor rasterize_impl(const VisualPrompt & p, int64_t W, int64_t H, int64_t S, const std::string & who) {
    VLLM_CHECK(W > 0 && H > 0, who, ": the image size must be positive, got ", W, "x", H);
    VLLM_CHECK(S > 0, who, ": the mask size S must be positive, got ", S);
    at::Tensor out;
    switch (p.kind) {
        case VisualPrompt::Kind::Box: out = rasterize_box(p, W, H, S, who); break;
        case VisualPrompt::Kind::Point: {
            VLLM_CHECK(p.coords.size() == 2, who, ": a point needs 2 coordinates x,y, got ", p.coords.size());
            check_finite(p, who);
            out = resize_sparse({pixel_of(p.coords[0], p.coords[1], W, H, who, "point")}, W, H, S);
            break;
        }
        case VisualPrompt::Kind::Scribble: {
            VLLM_CHECK(p.coords.size() >= 4 && p.coords.size() % 2 == 0, who,
                       ": a scribble needs an even number (>= 4) of coordinates x1,y1,x2,y2,..., got ",
                       p.coords.size());
            check_finite(p, who);
            std::vector<std::pair<int64_t, int64_t>> vertices, pixels;
            for (size_t i = 0; i < p.coords.size(); i += 2) {
                vertices.push_back(pixel_of(p.coords[i], p.coords[i + 1], W, H, who,
                                            "vertex " + std::to_string(i / 2 + 1)));
            }
            for (size_t i = 0; i + 1 < vertices.size(); ++i) {
                draw_line(vertices[i].first, vertices[i].second, vertices[i + 1].first, vertices[i + 1].second,
                          pixels);
            }
            std::sort(pixels.begin(), pixels.end());
            pixels.erase(std::unique(pixels.begin(), pixels.end()), pixels.end());
            out = resize_sparse(pixels, W, H, S);
            break;
        }
        case VisualPrompt::Kind::Mask: {
            const io::Image & m = p.mask;
            VLLM_CHECK(m.channels == 1, who, ": a mask must have 1 channel, got ", m.channels);
            VLLM_CHECK(m.width == W && m.height == H, who, ": the mask is ", m.width, "x", m.height,
                       " but the image is ", W, "x", H, " (a mask must have the image's size)");
            VLLM_CHECK(int64_t(m.data.size()) == W * H, who, ": the mask holds ", m.data.size(),
                       " bytes, expected ", W * H, " for ", W, "x", H, "x1");
            out = resize_dense(m, S);
            break;
        }
        default: fail(who, ": unknown prompt kind ", int(p.kind));
    }
    VLLM_CHECK(out.sum().item<float>() > 0, who, ": the mask is empty after rasterisation to ", S, "x", S,
               " (a point or thin stroke can vanish when the ", W, "x", H,
               " image is shrunk; use a box or a larger mask)");
    return out;
}

std::string trim(const std::string & s) {
    size_t a = 0, b = s.size();
    while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
    return s.substr(a, b - a);
}

std::vector<double> parse_numbers(const std::string & s, const char * what, const char * form) {
    std::vector<double> v;
    size_t start = 0;
    for (;;) {
        const size_t comma = s.find(',', start);
        const std::string field = trim(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        VLLM_CHECK(!field.empty(), what, " \"", s, "\": empty number (expected ", form, ")");
        errno = 0;
        char * end = nullptr;
        const double d = std::strtod(field.c_str(), &end);
        VLLM_CHECK(end == field.c_str() + field.size() && errno != ERANGE, what, " \"", s, "\": \"", field,
                   "\" is not a number (expected ", form, ")");
        VLLM_CHECK(std::isfinite(d), what, " \"", s, "\": \"", field, "\" is not a finite number (expected ", form,
                   ")");
        v.push_back(d);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return v;
}

}  // namespace

const char * visual_prompt_kind_name(VisualPrompt::Kind k) {
    switch (k) {
        case VisualPrompt::Kind::Box: return "box";
        case VisualPrompt::Kind::Point: return "point";
        case VisualPrompt::Kind::Scribble: return "scribble";
        case VisualPrompt::Kind::Mask: return "mask";
    }
    return "unknown";
}

at::Tensor rasterize_prompt(const VisualPrompt & p, int64_t image_width, int64_t image_height, int64_t S) {
    return rasterize_impl(p, image_width, image_height, S,
                          std::string("visual prompt (") + visual_prompt_kind_name(p.kind) + ")");
}

at::Tensor rasterize_prompts(const std::vector<VisualPrompt> & ps, int64_t w, int64_t h, int64_t S) {
    VLLM_CHECK(S > 0, "visual prompts: the mask size S must be positive, got ", S);
    std::vector<at::Tensor> masks;
    masks.reserve(ps.size());
    for (size_t i = 0; i < ps.size(); ++i) {
        masks.push_back(rasterize_impl(ps[i], w, h, S,
                                       "visual prompt " + std::to_string(i + 1) + " (" +
                                           visual_prompt_kind_name(ps[i].kind) + ")"));
    }
    if (masks.empty()) return at::zeros({0, 1, S, S}, at::kFloat);
    return at::stack(masks).unsqueeze(1);
}

VisualPrompt parse_box(const std::string & s) {
    VisualPrompt p;
    p.kind = VisualPrompt::Kind::Box;
    p.coords = parse_numbers(s, "box", "x1,y1,x2,y2");
    VLLM_CHECK(p.coords.size() == 4, "box \"", s, "\": expected 4 numbers x1,y1,x2,y2, got ", p.coords.size());
    VLLM_CHECK(p.coords[2] >= p.coords[0] && p.coords[3] >= p.coords[1], "box \"", s,
               "\": x2 < x1 or y2 < y1 (expected x1,y1,x2,y2 with x1 <= x2, y1 <= y2)");
    return p;
}

VisualPrompt parse_point(const std::string & s) {
    VisualPrompt p;
    p.kind = VisualPrompt::Kind::Point;
    p.coords = parse_numbers(s, "point", "x,y");
    VLLM_CHECK(p.coords.size() == 2, "point \"", s, "\": expected 2 numbers x,y, got ", p.coords.size());
    return p;
}

VisualPrompt parse_scribble(const std::string & s) {
    VisualPrompt p;
    p.kind = VisualPrompt::Kind::Scribble;
    p.coords = parse_numbers(s, "scribble", "x1,y1,x2,y2,...");
    VLLM_CHECK(p.coords.size() >= 4 && p.coords.size() % 2 == 0, "scribble \"", s,
               "\": expected an even number (>= 4) of numbers x1,y1,x2,y2,..., got ", p.coords.size());
    return p;
}

}  // namespace visionllm::vision
