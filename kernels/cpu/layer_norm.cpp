// nn.LayerNorm over the last dimension, rows in parallel, statistics in fp32
// with the corrected two-pass algorithm: m = mean(x), then d = x - m gives
// both the correction c = mean(d) and var = mean(d^2) - c^2 (Chan, Golub and
// LeVeque), so a row with a large mean (CLIP's outlier channels) loses nothing
// to cancellation. f16/bf16 rows are widened to an fp32 row buffer first. The
// loops are plain C++ that the compiler vectorises (32-lane partial sums),
// compiled twice: for any x86-64 and for AVX2+FMA+F16C, picked at run time
// (linear_best_isa, so VISIONLLM_CPU_ISA=scalar forces the portable code).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels {

void check_layer_norm_args(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, double eps) {
    VLLM_CHECK(x.defined() && w.defined(), "layer_norm: x and weight must be defined tensors");
    const at::ScalarType t = x.scalar_type();
    VLLM_CHECK(t == at::kFloat || t == at::kHalf || t == at::kBFloat16, "layer_norm: unsupported dtype ", t,
               " of x (f32, f16, bf16)");
    VLLM_CHECK(x.dim() >= 1 && w.dim() == 1 && x.size(-1) == w.size(0), "layer_norm: x ", x.sizes(), " and weight ",
               w.sizes(), " do not match");
    VLLM_CHECK(w.scalar_type() == t, "layer_norm: x is ", t, " but weight is ", w.scalar_type());
    if (b.defined()) {
        VLLM_CHECK(b.dim() == 1 && x.size(-1) == b.size(0), "layer_norm: x ", x.sizes(), " and bias ", b.sizes(),
                   " do not match");
        VLLM_CHECK(b.scalar_type() == t, "layer_norm: x is ", t, " but bias is ", b.scalar_type());
    }
    VLLM_CHECK(std::isfinite(eps) && eps >= 0, "layer_norm: eps must be finite and >= 0, got ", eps);
}

}  // namespace visionllm::kernels

namespace visionllm::kernels::cpu {

namespace {

#define VLLM_INLINE inline __attribute__((always_inline))
#define VLLM_AVX2 __attribute__((target("avx2,fma,f16c")))

// as in gelu.cpp: selects need no-trapping-math to vectorise, and what is inlined into the row loops must share
// the region's options
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")

// one row: y = (x - mean) * rstd * w + b, all fp32. The sums run in 32 independent lanes (four AVX2 vectors,
// or eight SSE ones: the adds' latency, not their throughput, would bound a single accumulator) and are
// added up at the end, which also keeps their rounding error small.
constexpr int k_lanes = 32;

VLLM_INLINE void ln_row(const float * __restrict x, const float * __restrict w, const float * __restrict b,
                        float * __restrict y, int64_t n, float eps) {
    const int64_t nv = n / k_lanes * k_lanes;
    float acc[k_lanes] = {};
    for (int64_t i = 0; i < nv; i += k_lanes)
        for (int j = 0; j < k_lanes; ++j) acc[j] += x[i + j];
    float s = 0.f;
    for (int64_t i = nv; i < n; ++i) s += x[i];
    for (int j = 0; j < k_lanes; ++j) s += acc[j];
    const float m = s / float(n);

    float accd[k_lanes] = {}, accq[k_lanes] = {};
    for (int64_t i = 0; i < nv; i += k_lanes)
        for (int j = 0; j < k_lanes; ++j) {
            const float d = x[i + j] - m;
            accd[j] += d;
            accq[j] += d * d;
        }
    float sd = 0.f, sq = 0.f;
    for (int64_t i = nv; i < n; ++i) {
        const float d = x[i] - m;
        sd += d;
        sq += d * d;
    }
    for (int j = 0; j < k_lanes; ++j) {
        sd += accd[j];
        sq += accq[j];
    }
    const float c = sd / float(n);  // mean = m + c, but m + c would round at m's magnitude
    float var = sq / float(n) - c * c;
    var = var > 0.f ? var : 0.f;
    const float rstd = 1.f / std::sqrt(var + eps);
    // x - m is exact when x is near m (Sterbenz), so the large part cancels before any rounding
    for (int64_t i = 0; i < n; ++i) y[i] = ((x[i] - m) - c) * (rstd * w[i]) + b[i];
}

// ---- storage dtype <-> fp32 rows
VLLM_INLINE float bf16_to_f(uint16_t v) { return __builtin_bit_cast(float, uint32_t(v) << 16); }
VLLM_INLINE uint16_t f_to_bf16(float f) {  // round to nearest even, NaN stays NaN
    const uint32_t u = __builtin_bit_cast(uint32_t, f);
    const uint16_t r = uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return f != f ? uint16_t(0x7fc0) : r;
}
VLLM_INLINE void load_row(const at::BFloat16 * __restrict x, float * __restrict f, int64_t n) {
    const uint16_t * xs = reinterpret_cast<const uint16_t *>(x);
    for (int64_t i = 0; i < n; ++i) f[i] = bf16_to_f(xs[i]);
}
VLLM_INLINE void load_row(const at::Half * __restrict x, float * __restrict f, int64_t n) {
    for (int64_t i = 0; i < n; ++i) f[i] = float(x[i]);
}
VLLM_INLINE void store_row(const float * __restrict f, at::BFloat16 * __restrict y, int64_t n) {
    uint16_t * ys = reinterpret_cast<uint16_t *>(y);
    for (int64_t i = 0; i < n; ++i) ys[i] = f_to_bf16(f[i]);
}
VLLM_INLINE void store_row(const float * __restrict f, at::Half * __restrict y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = at::Half(f[i]);
}
VLLM_AVX2 VLLM_INLINE void load_row_f16c(const at::Half * x, float * f, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(f + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x + i))));
    for (; i < n; ++i) f[i] = float(x[i]);
}
VLLM_AVX2 VLLM_INLINE void store_row_f16c(const float * f, at::Half * y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(f + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; ++i) y[i] = at::Half(f[i]);
}

// rows [r0, r1); xf, yf: n-float scratch rows for f16/bf16
template <class T>
void ln_rows(const T * x, const float * w, const float * b, T * y, int64_t r0, int64_t r1, int64_t n, float eps,
             float * xf, float * yf) {
    for (int64_t r = r0; r < r1; ++r) {
        if constexpr (std::is_same_v<T, float>) {
            ln_row(x + r * n, w, b, y + r * n, n, eps);
        } else {
            load_row(x + r * n, xf, n);
            ln_row(xf, w, b, yf, n, eps);
            store_row(yf, y + r * n, n);
        }
    }
}

template <class T>
VLLM_AVX2 void ln_rows_avx2(const T * x, const float * w, const float * b, T * y, int64_t r0, int64_t r1, int64_t n,
                            float eps, float * xf, float * yf) {
    for (int64_t r = r0; r < r1; ++r) {
        if constexpr (std::is_same_v<T, float>) {
            ln_row(x + r * n, w, b, y + r * n, n, eps);
        } else if constexpr (std::is_same_v<T, at::Half>) {
            load_row_f16c(x + r * n, xf, n);
            ln_row(xf, w, b, yf, n, eps);
            store_row_f16c(yf, y + r * n, n);
        } else {
            load_row(x + r * n, xf, n);
            ln_row(xf, w, b, yf, n, eps);
            store_row(yf, y + r * n, n);
        }
    }
}

#pragma GCC pop_options

template <class T>
void layer_norm_all(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, at::Tensor & y, float eps) {
    const int64_t n = x.size(-1), rows = n == 0 ? 0 : x.numel() / n;
    if (rows == 0) return;
    // weight and bias in fp32 once (a no-op for f32); a missing bias is zeros
    at::Tensor wf = w.to(at::kFloat).contiguous();
    at::Tensor bf = b.defined() ? b.to(at::kFloat).contiguous() : at::zeros({n}, w.options().dtype(at::kFloat));
    const float * wp = wf.data_ptr<float>();
    const float * bp = bf.data_ptr<float>();
    const T * xp = x.data_ptr<T>();
    T * yp = y.data_ptr<T>();
    static const bool avx2 = linear_best_isa() != LinearIsa::Scalar && __builtin_cpu_supports("f16c");
    const int64_t grain = std::max<int64_t>(1, 16384 / n);
    at::parallel_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
        std::vector<float> scratch(std::is_same_v<T, float> ? 0 : 2 * n);
        float * xf = scratch.data();
        float * yf = xf ? xf + n : nullptr;
        if (avx2)
            ln_rows_avx2(xp, wp, bp, yp, r0, r1, n, eps, xf, yf);
        else
            ln_rows(xp, wp, bp, yp, r0, r1, n, eps, xf, yf);
    });
}

}  // namespace

at::Tensor layer_norm(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, double eps) {
    check_layer_norm_args(x, w, b, eps);
    at::Tensor xc = x.contiguous();
    at::Tensor y = at::empty_like(xc);
    switch (x.scalar_type()) {
        case at::kFloat: layer_norm_all<float>(xc, w, b, y, float(eps)); break;
        case at::kHalf: layer_norm_all<at::Half>(xc, w, b, y, float(eps)); break;
        case at::kBFloat16: layer_norm_all<at::BFloat16>(xc, w, b, y, float(eps)); break;
        default: fail("layer_norm: unsupported dtype ", x.scalar_type(), " (f32, f16, bf16)");
    }
    return y;
}

}  // namespace visionllm::kernels::cpu
