#include "decoders/gdino/preprocess.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <vector>

#include "visionllm/error.h"

// The resize weights and the normalisation are evaluated as OpenCV evaluates them: no fused multiply-adds.
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

namespace visionllm::gdino {

namespace {

void check_image(const io::Image & img, const char * fn) {
    if (img.width <= 0 || img.height <= 0) fail(fn, ": empty image (", img.width, "x", img.height, ")");
    if (img.width > io::kMaxImageSide || img.height > io::kMaxImageSide || img.width * img.height > io::kMaxImagePixels)
        fail(fn, ": image of ", img.width, "x", img.height, " pixels is too large (at most ", io::kMaxImageSide,
             " per side and ", io::kMaxImagePixels, " in total)");
    if (img.channels != 1 && img.channels != 3 && img.channels != 4)
        fail(fn, ": expected a 1-, 3- or 4-channel image, got ", img.channels, " channels");
    if (img.data.size() != size_t(img.width * img.height * img.channels))
        fail(fn, ": image holds ", img.data.size(), " bytes, expected ", img.width, "x", img.height, "x", img.channels);
}

// cvRound / saturate_cast<int|short>(float|double): round half to even (the default rounding mode)
inline int round_even(double v) { return static_cast<int>(std::nearbyint(v)); }
// cvFloor(float)
inline int floor_int(float v) {
    const int i = static_cast<int>(v);
    return i - (static_cast<float>(i) > v);
}

constexpr int kCoefBits = 11;  // INTER_RESIZE_COEF_BITS
constexpr int kCoefScale = 1 << kCoefBits;

// one axis of the classic path: per destination index the first source index and the two fixed-point weights
struct Taps {
    std::vector<int> ofs;
    std::vector<int16_t> w0, w1;
    int limit = 0;  // horizontal only: from here on the value is src[ofs] * 2048 (OpenCV's xmax)
};

// hal::resize's coefficient loop for INTER_LINEAR, non-area mode. `clamp` (the horizontal axis) applies OpenCV's
// edge handling of xofs/alpha; the vertical axis keeps the raw index and weight and clips the rows when reading.
Taps linear_taps(int src, int dst, double scale, bool clamp) {
    Taps t;
    t.ofs.resize(size_t(dst));
    t.w0.resize(size_t(dst));
    t.w1.resize(size_t(dst));
    t.limit = dst;
    for (int d = 0; d < dst; ++d) {
        float f = static_cast<float>((d + 0.5) * scale - 0.5);
        int s = floor_int(f);
        f -= static_cast<float>(s);
        if (clamp) {
            if (s < 0) f = 0.f, s = 0;
            if (s + 1 >= src) {
                t.limit = std::min(t.limit, d);
                if (s >= src - 1) f = 0.f, s = src - 1;
            }
        }
        t.ofs[size_t(d)] = s;
        const float c0 = 1.f - f, c1 = f;
        t.w0[size_t(d)] = static_cast<int16_t>(std::clamp(round_even(c0 * static_cast<float>(kCoefScale)), -32768, 32767));
        t.w1[size_t(d)] = static_cast<int16_t>(std::clamp(round_even(c1 * static_cast<float>(kCoefScale)), -32768, 32767));
    }
    return t;
}

// INTER_AREA's fast path for an exact 2x reduction (ResizeAreaFastVec, fast_mode for cn 1, 3, 4)
void resize_half(const io::Image & src, io::Image & dst) {
    const int64_t cn = src.channels, dw = dst.width;
    at::parallel_for(0, dst.height, 16, [&](int64_t y0, int64_t y1) {
        for (int64_t y = y0; y < y1; ++y) {
            const uint8_t * a = src.row(2 * y);
            const uint8_t * b = src.row(2 * y + 1);
            uint8_t * d = dst.row(y);
            for (int64_t x = 0; x < dw; ++x)
                for (int64_t c = 0; c < cn; ++c) {
                    const int64_t i = 2 * x * cn + c;
                    d[x * cn + c] = static_cast<uint8_t>((a[i] + a[i + cn] + b[i] + b[i + cn] + 2) >> 2);
                }
        }
    });
}

void resize_classic(const io::Image & src, io::Image & dst, double scale_x, double scale_y) {
    const int sw = int(src.width), sh = int(src.height), dw = int(dst.width), dh = int(dst.height);
    const int cn = int(src.channels);
    const Taps tx = linear_taps(sw, dw, scale_x, true);
    const Taps ty = linear_taps(sh, dh, scale_y, false);

    // the horizontal pass of one source row into int32 (HResizeLinear with its vector op: same integers)
    auto hresize = [&](int sy, int32_t * out) {
        const uint8_t * s = src.row(sy);
        int dx = 0;
        for (; dx < tx.limit; ++dx) {
            const uint8_t * p = s + int64_t(tx.ofs[size_t(dx)]) * cn;
            const int32_t a0 = tx.w0[size_t(dx)], a1 = tx.w1[size_t(dx)];
            for (int c = 0; c < cn; ++c) out[dx * cn + c] = p[c] * a0 + p[c + cn] * a1;
        }
        for (; dx < dw; ++dx) {
            const uint8_t * p = s + int64_t(tx.ofs[size_t(dx)]) * cn;
            for (int c = 0; c < cn; ++c) out[dx * cn + c] = p[c] * kCoefScale;
        }
    };

    const int64_t row_len = int64_t(dw) * cn;
    at::parallel_for(0, dh, 16, [&](int64_t y0, int64_t y1) {
        // two cached source rows (resizeGeneric_Invoker reuses rows the same way; the values do not depend on it)
        std::vector<int32_t> buf(size_t(2 * row_len));
        int32_t * rows[2] = {buf.data(), buf.data() + row_len};
        int have[2] = {-1, -1};
        for (int64_t dy = y0; dy < y1; ++dy) {
            const int sy0 = ty.ofs[size_t(dy)];
            const int want[2] = {std::clamp(sy0, 0, sh - 1), std::clamp(sy0 + 1, 0, sh - 1)};
            if (have[0] != want[0]) {
                if (have[1] == want[0]) {
                    std::swap(rows[0], rows[1]);
                    std::swap(have[0], have[1]);
                } else {
                    hresize(want[0], rows[0]);
                    have[0] = want[0];
                }
            }
            if (have[1] != want[1]) {
                if (have[0] == want[1])
                    std::memcpy(rows[1], rows[0], size_t(row_len) * sizeof(int32_t));
                else
                    hresize(want[1], rows[1]);
                have[1] = want[1];
            }
            const int32_t b0 = ty.w0[size_t(dy)], b1 = ty.w1[size_t(dy)];
            const int32_t * h0 = rows[0];
            const int32_t * h1 = rows[1];
            uint8_t * d = dst.row(dy);
            for (int64_t x = 0; x < row_len; ++x) {
                const int v = (((b0 * (h0[x] >> 4)) >> 16) + ((b1 * (h1[x] >> 4)) >> 16) + 2) >> 2;
                d[x] = static_cast<uint8_t>(std::clamp(v, 0, 255));
            }
        }
    });
}

}  // namespace

std::array<int64_t, 2> rescale_size(int64_t width, int64_t height, int64_t max_long, int64_t max_short) {
    if (width <= 0 || height <= 0) fail("rescale_size: invalid image size ", width, "x", height);
    if (max_long <= 0 || max_short <= 0)
        fail("rescale_size: the scale (", max_long, ", ", max_short, ") must be positive");
    // mmcv: max_long_edge = max(scale), max_short_edge = min(scale)
    const double long_edge = double(std::max(max_long, max_short)), short_edge = double(std::min(max_long, max_short));
    const double scale = std::min(long_edge / double(std::max(width, height)), short_edge / double(std::min(width, height)));
    const double fw = double(width) * scale + 0.5, fh = double(height) * scale + 0.5;  // int(): truncation
    if (!(fw < 1e9 && fh < 1e9)) fail("rescale_size: ", width, "x", height, " scaled by ", scale, " is too large");
    const int64_t w = static_cast<int64_t>(fw), h = static_cast<int64_t>(fh);
    if (w < 1 || h < 1)
        fail("detection preprocessing: a ", width, "x", height, " image is too elongated: the keep-ratio resize to (",
             max_long, ", ", max_short, ") gives ", w, "x", h, " pixels");
    return {w, h};
}

io::Image resize_linear(const io::Image & src, int64_t width, int64_t height) {
    check_image(src, "resize_linear");
    if (width <= 0 || height <= 0 || width > io::kMaxImageSide || height > io::kMaxImageSide ||
        width * height > io::kMaxImagePixels)
        fail("resize_linear: invalid target size ", width, "x", height);
    io::Image dst;
    dst.width = width;
    dst.height = height;
    dst.channels = src.channels;
    if (width == src.width && height == src.height) {  // cv::resize: dsize == ssize is a copy
        dst.data = src.data;
        return dst;
    }
    dst.data.resize(size_t(width * height * src.channels));
    // cv::resize with dsize given: inv_scale = dsize / ssize; hal::resize: scale = 1 / inv_scale
    const double inv_x = double(width) / double(src.width), inv_y = double(height) / double(src.height);
    const double scale_x = 1. / inv_x, scale_y = 1. / inv_y;
    const int iscale_x = round_even(scale_x), iscale_y = round_even(scale_y);
    const bool area_fast = std::abs(scale_x - iscale_x) < DBL_EPSILON && std::abs(scale_y - iscale_y) < DBL_EPSILON;
    if (area_fast && iscale_x == 2 && iscale_y == 2)
        resize_half(src, dst);
    else
        resize_classic(src, dst, scale_x, scale_y);
    return dst;
}

DetectionImage preprocess_detection(const io::Image & image, const DetectionImageConfig & cfg) {
    check_image(image, "detection preprocessing");
    if (image.channels == 4) fail("detection preprocessing: expected an RGB or gray image, got 4 channels");
    if (cfg.size_divisor < 1) fail("detection preprocessing: size_divisor must be >= 1, got ", cfg.size_divisor);
    for (int c = 0; c < 3; ++c)
        if (!(cfg.std[size_t(c)] != 0.f) || !std::isfinite(cfg.std[size_t(c)]) || !std::isfinite(cfg.mean[size_t(c)]))
            fail("detection preprocessing: mean/std of channel ", c, " must be finite with std != 0 (got ",
                 cfg.mean[size_t(c)], ", ", cfg.std[size_t(c)], ")");

    const auto [rw, rh] = rescale_size(image.width, image.height, cfg.max_long, cfg.max_short);
    if (rw > io::kMaxImageSide || rh > io::kMaxImageSide || rw * rh > io::kMaxImagePixels)
        fail("detection preprocessing: the resized image ", rw, "x", rh, " is too large (max_long ", cfg.max_long,
             ", max_short ", cfg.max_short, ")");
    const io::Image resized = resize_linear(image, rw, rh);

    const int64_t div = cfg.size_divisor;
    const int64_t hp = (rh + div - 1) / div * div, wp = (rw + div - 1) / div * div;
    DetectionImage out;
    out.width = image.width;
    out.height = image.height;
    out.resized_width = rw;
    out.resized_height = rh;
    out.pixel_values = at::zeros({1, 3, hp, wp}, at::kFloat);

    // mmcv.imnormalize_: cv2.subtract(img, mean) runs in float32 (the scalar is converted to the image depth),
    // cv2.multiply(img, 1 / std) in float64 (a scalar multiplier is applied in double) and is stored as float32.
    // Every uint8 value maps to one float per channel: a table.
    float lut[3][256];
    for (int c = 0; c < 3; ++c) {
        const float mean = cfg.mean[size_t(c)];
        const double stdinv = 1.0 / double(cfg.std[size_t(c)]);
        for (int v = 0; v < 256; ++v) {
            const float t = static_cast<float>(v) - mean;
            lut[c][v] = static_cast<float>(double(t) * stdinv);
        }
    }
    float * px = out.pixel_values.data_ptr<float>();
    const int64_t cn = resized.channels, plane = hp * wp;
    at::parallel_for(0, rh, 32, [&](int64_t y0, int64_t y1) {
        for (int64_t y = y0; y < y1; ++y) {
            const uint8_t * s = resized.row(y);
            for (int c = 0; c < 3; ++c) {
                float * d = px + c * plane + y * wp;
                const int64_t sc = cn == 1 ? 0 : c;  // gray: R = G = B
                for (int64_t x = 0; x < rw; ++x) d[x] = lut[c][s[x * cn + sc]];
            }
        }
    });
    // the model's valid-pixel mask: pixel_values[:, 0] != 0 (a padded pixel is 0; a real one is 0 only if its red
    // value normalises to exactly 0, which the default mean, not an integer, never does)
    out.pixel_mask = out.pixel_values.select(1, 0).ne(0);
    return out;
}

}  // namespace visionllm::gdino
