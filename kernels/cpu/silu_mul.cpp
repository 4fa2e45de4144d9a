// silu(gate) * up for the LLaMA MLP. std::exp keeps the compiler from
// vectorising (errno, libm call), so exp is a branch-free range reduction plus
// a degree-7 Taylor polynomial (relative error ~1e-7, below fp32's half ulp
// after the final rounding to bf16/f16) over blocks converted to fp32.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>

#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels {

void check_silu_mul_args(const at::Tensor & gate, const at::Tensor & up) {
    VLLM_CHECK(gate.sizes() == up.sizes(), "silu_mul: gate ", gate.sizes(), " and up ", up.sizes(),
               " differ in shape");
    VLLM_CHECK(gate.scalar_type() == up.scalar_type(), "silu_mul: gate is ", gate.scalar_type(), " but up is ",
               up.scalar_type());
}

}  // namespace visionllm::kernels

namespace visionllm::kernels::cpu {

namespace {

// the clamps are compares, which GCC will not turn into vector selects while
// compares may trap: without this the loop below stays scalar
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")

// e^x for x in [-87, 88] (clamped there: silu needs no more): x = n*ln2 + r with |r| <= ln2/2
inline float exp_poly(float x) {
    // plain selects: std::min/max, compiled without this file's option, would not inline here
    x = x < -87.f ? -87.f : x;
    x = x > 88.f ? 88.f : x;
    const float magic = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
    const float n = (x * 1.44269504f + magic) - magic;
    // ln2 split in two so that n*ln2_hi is exact
    const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.f / 5040;
    p = p * r + 1.f / 720;
    p = p * r + 1.f / 120;
    p = p * r + 1.f / 24;
    p = p * r + 1.f / 6;
    p = p * r + 0.5f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    const uint32_t bits = uint32_t(int32_t(n) + 127) << 23;  // 2^n, n in [-126, 127]
    return p * __builtin_bit_cast(float, bits);
}

// g[i] = silu(g[i]) * u[i]; a NaN gate propagates through the numerator whatever exp_poly returns
void silu_mul_block(float * __restrict g, const float * __restrict u, int64_t n) {
    for (int64_t i = 0; i < n; ++i) g[i] = g[i] / (1.f + exp_poly(-g[i])) * u[i];
}

#pragma GCC pop_options

template <class T>
void silu_mul_range(const T * g, const T * u, T * y, int64_t begin, int64_t end) {
    constexpr int64_t blk = 256;
    float gf[blk], uf[blk];
    for (int64_t i0 = begin; i0 < end; i0 += blk) {
        const int64_t n = std::min(blk, end - i0);
        for (int64_t i = 0; i < n; ++i) {
            gf[i] = float(g[i0 + i]);
            uf[i] = float(u[i0 + i]);
        }
        silu_mul_block(gf, uf, n);
        for (int64_t i = 0; i < n; ++i) y[i0 + i] = T(gf[i]);
    }
}

template <class T>
void silu_mul_all(const at::Tensor & g, const at::Tensor & u, at::Tensor & y) {
    const T * gp = g.data_ptr<T>();
    const T * up = u.data_ptr<T>();
    T * yp = y.data_ptr<T>();
    at::parallel_for(0, g.numel(), 16384,
                     [&](int64_t b, int64_t e) { silu_mul_range(gp, up, yp, b, e); });
}

}  // namespace

at::Tensor silu_mul(const at::Tensor & gate, const at::Tensor & up) {
    check_silu_mul_args(gate, up);
    at::Tensor g = gate.contiguous(), u = up.contiguous();
    at::Tensor y = at::empty_like(g);
    switch (gate.scalar_type()) {
        case at::kFloat: silu_mul_all<float>(g, u, y); break;
        case at::kHalf: silu_mul_all<at::Half>(g, u, y); break;
        case at::kBFloat16: silu_mul_all<at::BFloat16>(g, u, y); break;
        default: fail("silu_mul: unsupported dtype ", gate.scalar_type(), " (f32, f16, bf16)");
    }
    return y;
}

}  // namespace visionllm::kernels::cpu
