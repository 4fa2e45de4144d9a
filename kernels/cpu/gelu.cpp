// act(x + bias) for the CLIP MLP: QuickGELU x*sigmoid(1.702x) and the exact
// erf GELU, fp32 math with one rounding, over fp32 blocks of at most 256 (cut
// at row ends when there is a bias, whose add is folded into the load). std::exp / std::erf
// are libm calls the compiler will not vectorise, so both are branch-free
// polynomials, in two versions picked at run time (linear_best_isa, so
// VISIONLLM_CPU_ISA=scalar forces the portable one): plain C++ the compiler
// vectorises for any x86-64, and AVX2+FMA(+F16C) intrinsics that interleave
// four vectors.
//  - exp: n = round(s/ln2), r = s - n*ln2 in two parts, degree-6 minimax
//    polynomial (relative error ~1e-7 in fp32).
//  - gelu(x) = x*Phi(x) with Phi(x) = h for x < 0 and 1 - h for x >= 0,
//    h = erfc(|x|/sqrt2)/2 from a fit of erfc(z) e^(z^2) in t = 1/(1 + z/2)
//    (relative error 4e-8): Phi is accurate to a few 1e-7 relative in the
//    negative tail too, where 0.5*x*(1 + erf(x/sqrt2)) cancels (at::gelu is
//    1e-3 off at x = -4); what remains there is the rounding of z^2 in the
//    exponent (relative ~6e-8 * z^2: 1e-6 near x = -5.6, where |gelu| < 1e-7).
// +inf gives +inf, -inf NaN (as PyTorch: -inf * 0), NaN propagates.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels {

const char * activation_name(Activation act) {
    switch (act) {
        case Activation::QuickGelu: return "quick_gelu";
        case Activation::Gelu: return "gelu";
    }
    return "?";
}

void check_bias_act_args(const at::Tensor & x, const at::Tensor & bias, Activation act, bool in_place) {
    const char * op = in_place ? "bias_act_" : "bias_act";
    VLLM_CHECK(act == Activation::QuickGelu || act == Activation::Gelu, op, ": unknown activation ", int(act));
    VLLM_CHECK(x.defined(), op, ": x is an undefined tensor");
    const at::ScalarType t = x.scalar_type();
    VLLM_CHECK(t == at::kFloat || t == at::kHalf || t == at::kBFloat16, op, ": unsupported dtype ", t,
               " of x (f32, f16, bf16)");
    if (bias.defined()) {
        VLLM_CHECK(x.dim() >= 1 && bias.dim() == 1 && bias.size(0) == x.size(-1), op, ": bias ", bias.sizes(),
                   " does not match the last dimension of x ", x.sizes());
        VLLM_CHECK(bias.scalar_type() == t, op, ": x is ", t, " but bias is ", bias.scalar_type());
    }
    if (in_place)
        VLLM_CHECK(x.is_contiguous(), op, ": x ", x.sizes(), " must be contiguous to be updated in place (strides ",
                   x.strides(), ")");
}

}  // namespace visionllm::kernels

namespace visionllm::kernels::cpu {

namespace {

#define VLLM_INLINE inline __attribute__((always_inline))
#define VLLM_AVX2 __attribute__((target("avx2,fma,f16c")))

// the portable code's clamps are compares, which GCC will not turn into vector
// selects while compares may trap: without this its loops stay scalar.
// Everything inlined into the block loops lives inside this region (functions
// compiled with other optimize options are not inlined into these).
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")

constexpr int64_t k_block = 256;  // floats per block: the buffer lives in L1

// ---- portable: one float at a time, which the compiler vectorises (SSE2 on any x86-64)

// e^s for s in [-87, 89] (callers clamp): s = n*ln2 + r, |r| <= ln2/2, degree-6 minimax polynomial for e^r
// (relative error 2.4e-9, ~1e-7 after fp32 rounding). 2^n comes from the bits of n + 1.5*2^23, and n = 128
// (s > 88.38) gives inf, the right limit for the callers.
VLLM_INLINE float exp_core(float s) {
    const float magic = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer in the low mantissa bits
    const float nm = s * 1.44269504f + magic;
    const float n = nm - magic;
    // ln2 in two parts: n * 0.693359375 (9 bits) is exact
    const float r = (s - n * 0.693359375f) - n * -2.12194440e-4f;
    float p = 1.383273047e-3f;
    p = p * r + 8.378072642e-3f;
    p = p * r + 4.166848212e-2f;
    p = p * r + 1.666637957e-1f;
    p = p * r + 4.999999106e-1f;
    p = p * r + 1.f;
    p = p * r + 1.f;
    // nm's bits are 0x4b400000 + n; 2^n's are (n + 127) << 23
    const uint32_t bits = (__builtin_bit_cast(uint32_t, nm) - 0x4b3fff81u) << 23;
    return p * __builtin_bit_cast(float, bits);
}

// x * sigmoid(1.702 x) = x / (1 + e^(-1.702 x)). The clamp may turn a NaN into a bound: x keeps it. Below
// x ~ -52 the exp is inf and the result -0 (the limit; -inf gives NaN, as PyTorch's -inf * 0).
VLLM_INLINE float quick_gelu(float x) {
    float s = -1.702f * x;
    s = s < -87.f ? -87.f : s;
    s = s > 89.f ? 89.f : s;
    return x / (1.f + exp_core(s));
}

// x * Phi(x), Phi(x) = h for x < 0 and 1 - h for x >= 0, h = erfc(z)/2 with z = |x|/sqrt2, as
// t * Q(t) * e^(-z^2), t = 1/(1 + z/2): Q(t) = erfc(z) e^(z^2) / 2t is smooth on t in (0, 1] (it tends to
// 1/(4 sqrt(pi)) as z grows); a degree-8 fit on t >= 0.17 (|x| <= 12.9) has relative error 4e-8 (2e-7 after
// fp32 rounding). Q and the exp are independent, so their latencies overlap. Beyond |x| = 12.9, h is below
// FLT_MIN and taken as 0 (so -inf gives NaN, as PyTorch's -inf * 0).
constexpr float k_erfc_q[9] = {-2.949645184e-02f, 1.421013027e-01f, -2.432129532e-01f,
                               1.385888904e-01f,  -1.300498005e-02f, 1.012124419e-01f,
                               1.215851977e-01f,  1.411830336e-01f,  1.410434693e-01f};

VLLM_INLINE float gelu(float x) {
    const float a = __builtin_fabsf(x);
    const float ac = a < 12.9f ? a : 12.9f;  // keeps e^(-z^2) and h normal; a NaN x propagates through x * phi
    const float t = 1.f / (1.f + 0.35355339f * ac);
    float q = k_erfc_q[0];
    for (int j = 1; j < 9; ++j) q = q * t + k_erfc_q[j];
    float h = t * q * exp_core((-0.5f * ac) * ac);
    h = a > 12.9f ? 0.f : h;
    const float phi = x < 0.f ? h : 1.f - h;
    return x * phi;
}

template <Activation A>
VLLM_INLINE void act_block(float * buf, int64_t n) {
    for (int64_t i = 0; i < n; ++i) buf[i] = A == Activation::Gelu ? gelu(buf[i]) : quick_gelu(buf[i]);
}

// ---- AVX2 + FMA: the same math in intrinsics, k_unroll vectors at a time with each step written for all of
// them back to back. The functions are long dependency chains (~20 dependent FMAs); one vector per iteration
// leaves the out-of-order window full of one chain's waiting instructions and runs ~2x slower (measured on
// an AVX2 EPYC: 1 vector 2x, 2 vectors 1.3x, 3 1.1x, 8 1.05x the time of 4).
constexpr int k_unroll = 4;
#define VLLM_EACH _Pragma("GCC unroll 8") for (int k = 0; k < k_unroll; ++k)

VLLM_AVX2 VLLM_INLINE void exp_avx2(__m256 * s) {  // in place
    const __m256 magic = _mm256_set1_ps(12582912.f);
    __m256 nm[k_unroll], n[k_unroll], r[k_unroll], p[k_unroll];
    VLLM_EACH nm[k] = _mm256_fmadd_ps(s[k], _mm256_set1_ps(1.44269504f), magic);
    VLLM_EACH n[k] = _mm256_sub_ps(nm[k], magic);
    VLLM_EACH r[k] = _mm256_fnmadd_ps(n[k], _mm256_set1_ps(0.693359375f), s[k]);
    VLLM_EACH r[k] = _mm256_fnmadd_ps(n[k], _mm256_set1_ps(-2.12194440e-4f), r[k]);
    VLLM_EACH p[k] = _mm256_fmadd_ps(_mm256_set1_ps(1.383273047e-3f), r[k], _mm256_set1_ps(8.378072642e-3f));
    VLLM_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(4.166848212e-2f));
    VLLM_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(1.666637957e-1f));
    VLLM_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(4.999999106e-1f));
    VLLM_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(1.f));
    VLLM_EACH p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(1.f));
    VLLM_EACH {
        const __m256i bits = _mm256_slli_epi32(
            _mm256_sub_epi32(_mm256_castps_si256(nm[k]), _mm256_set1_epi32(0x4b3fff81)), 23);
        s[k] = _mm256_mul_ps(p[k], _mm256_castsi256_ps(bits));
    }
}

VLLM_AVX2 VLLM_INLINE void quick_gelu_avx2(__m256 * x) {  // in place
    __m256 s[k_unroll];
    // max/min return their second operand for a NaN: the bound (x keeps the NaN)
    VLLM_EACH s[k] = _mm256_max_ps(_mm256_mul_ps(x[k], _mm256_set1_ps(-1.702f)), _mm256_set1_ps(-87.f));
    VLLM_EACH s[k] = _mm256_min_ps(s[k], _mm256_set1_ps(89.f));
    exp_avx2(s);
    VLLM_EACH x[k] = _mm256_div_ps(x[k], _mm256_add_ps(_mm256_set1_ps(1.f), s[k]));
}

VLLM_AVX2 VLLM_INLINE void gelu_avx2(__m256 * x) {  // in place
    const __m256 one = _mm256_set1_ps(1.f), big = _mm256_set1_ps(12.9f);
    __m256 a[k_unroll], ac[k_unroll], t[k_unroll], q[k_unroll], e[k_unroll];
    VLLM_EACH a[k] = _mm256_andnot_ps(_mm256_set1_ps(-0.f), x[k]);
    VLLM_EACH ac[k] = _mm256_min_ps(a[k], big);  // minps returns big for a NaN
    VLLM_EACH e[k] = _mm256_mul_ps(_mm256_mul_ps(ac[k], _mm256_set1_ps(-0.5f)), ac[k]);
    // t = 1/d by the 12-bit reciprocal and one Newton step (relative error ~2e-7, cheaper than a division)
    VLLM_EACH {
        const __m256 d = _mm256_fmadd_ps(ac[k], _mm256_set1_ps(0.35355339f), one);
        const __m256 r = _mm256_rcp_ps(d);
        t[k] = _mm256_mul_ps(r, _mm256_fnmadd_ps(d, r, _mm256_set1_ps(2.f)));
    }
    exp_avx2(e);
    VLLM_EACH q[k] = _mm256_fmadd_ps(_mm256_set1_ps(k_erfc_q[0]), t[k], _mm256_set1_ps(k_erfc_q[1]));
    for (int j = 2; j < 9; ++j) VLLM_EACH q[k] = _mm256_fmadd_ps(q[k], t[k], _mm256_set1_ps(k_erfc_q[j]));
    VLLM_EACH {
        __m256 h = _mm256_mul_ps(_mm256_mul_ps(t[k], q[k]), e[k]);
        h = _mm256_andnot_ps(_mm256_cmp_ps(a[k], big, _CMP_GT_OQ), h);
        // x < 0 (sign bit set): h, else 1 - h
        const __m256 phi = _mm256_blendv_ps(_mm256_sub_ps(one, h), h, x[k]);
        x[k] = _mm256_mul_ps(x[k], phi);
    }
}

template <Activation A>
VLLM_AVX2 VLLM_INLINE void act_avx2(__m256 * v) {
    if constexpr (A == Activation::Gelu)
        gelu_avx2(v);
    else
        quick_gelu_avx2(v);
}

// y[0, n) = act(x + b) (b may be null; x may equal y): whole groups of 8 * k_unroll straight from x to y, the
// rest through a zero-padded group
template <Activation A>
VLLM_AVX2 VLLM_INLINE void act_span_avx2(const float * x, const float * b, float * y, int64_t n) {
    constexpr int64_t step = 8 * k_unroll;
    int64_t i = 0;
    for (; i + step <= n; i += step) {
        __m256 v[k_unroll];
        VLLM_EACH v[k] = _mm256_loadu_ps(x + i + 8 * k);
        if (b) VLLM_EACH v[k] = _mm256_add_ps(v[k], _mm256_loadu_ps(b + i + 8 * k));
        act_avx2<A>(v);
        VLLM_EACH _mm256_storeu_ps(y + i + 8 * k, v[k]);
    }
    if (i < n) {
        alignas(32) float tail[step] = {};
        for (int64_t j = i; j < n; ++j) tail[j - i] = b ? x[j] + b[j] : x[j];
        __m256 v[k_unroll];
        VLLM_EACH v[k] = _mm256_load_ps(tail + 8 * k);
        act_avx2<A>(v);
        VLLM_EACH _mm256_store_ps(tail + 8 * k, v[k]);
        for (int64_t j = i; j < n; ++j) y[j] = tail[j - i];
    }
}

// ---- storage dtype <-> fp32 blocks, with the bias add on the way in (b may be null)
VLLM_INLINE float bf16_to_f(uint16_t v) { return __builtin_bit_cast(float, uint32_t(v) << 16); }
VLLM_INLINE uint16_t f_to_bf16(float f) {  // round to nearest even, NaN stays NaN
    const uint32_t u = __builtin_bit_cast(uint32_t, f);
    const uint16_t r = uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return f != f ? uint16_t(0x7fc0) : r;
}

VLLM_INLINE void load_block(const float * __restrict x, const float * __restrict b, float * __restrict buf,
                            int64_t n) {
    if (b)
        for (int64_t i = 0; i < n; ++i) buf[i] = x[i] + b[i];
    else
        for (int64_t i = 0; i < n; ++i) buf[i] = x[i];
}
VLLM_INLINE void load_block(const at::BFloat16 * __restrict x, const float * __restrict b, float * __restrict buf,
                            int64_t n) {
    const uint16_t * xs = reinterpret_cast<const uint16_t *>(x);
    if (b)
        for (int64_t i = 0; i < n; ++i) buf[i] = bf16_to_f(xs[i]) + b[i];
    else
        for (int64_t i = 0; i < n; ++i) buf[i] = bf16_to_f(xs[i]);
}
VLLM_INLINE void load_block(const at::Half * __restrict x, const float * __restrict b, float * __restrict buf,
                            int64_t n) {
    for (int64_t i = 0; i < n; ++i) buf[i] = float(x[i]) + (b ? b[i] : 0.f);
}
VLLM_INLINE void store_block(const float * __restrict buf, float * __restrict y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = buf[i];
}
VLLM_INLINE void store_block(const float * __restrict buf, at::BFloat16 * __restrict y, int64_t n) {
    uint16_t * ys = reinterpret_cast<uint16_t *>(y);
    for (int64_t i = 0; i < n; ++i) ys[i] = f_to_bf16(buf[i]);
}
VLLM_INLINE void store_block(const float * __restrict buf, at::Half * __restrict y, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] = at::Half(buf[i]);
}

// f16 with F16C: 8 at a time, the tail through c10's conversion
VLLM_AVX2 VLLM_INLINE void load_block_f16c(const at::Half * x, const float * b, float * buf, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i *>(x + i)));
        if (b) v = _mm256_add_ps(v, _mm256_loadu_ps(b + i));
        _mm256_storeu_ps(buf + i, v);
    }
    for (; i < n; ++i) buf[i] = float(x[i]) + (b ? b[i] : 0.f);
}
VLLM_AVX2 VLLM_INLINE void store_block_f16c(const float * buf, at::Half * y, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i *>(y + i),
                         _mm256_cvtps_ph(_mm256_loadu_ps(buf + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; ++i) y[i] = at::Half(buf[i]);
}

// elements [i, i + len) of the flat range: at most a block, never across a row when there is a bias
inline int64_t block_len(int64_t i, int64_t end, int64_t ncols, bool bias) {
    int64_t len = end - i < k_block ? end - i : k_block;
    if (bias) {
        const int64_t left = ncols - i % ncols;
        len = left < len ? left : len;
    }
    return len;
}

// y[begin, end) = act(x + b) over the flat index; x may equal y (in place): each block is read before it is written
template <class T, Activation A>
void bias_act_range(const T * x, const float * b, T * y, int64_t ncols, int64_t begin, int64_t end) {
    alignas(32) float buf[k_block];
    for (int64_t i = begin, len; i < end; i += len) {
        len = block_len(i, end, ncols, b != nullptr);
        load_block(x + i, b ? b + i % ncols : nullptr, buf, len);
        act_block<A>(buf, len);
        store_block(buf, y + i, len);
    }
}

template <class T, Activation A>
VLLM_AVX2 void bias_act_range_avx2(const T * x, const float * b, T * y, int64_t ncols, int64_t begin, int64_t end) {
    alignas(32) float buf[k_block];
    for (int64_t i = begin, len; i < end; i += len) {
        len = block_len(i, end, ncols, b != nullptr);
        const float * bi = b ? b + i % ncols : nullptr;
        if constexpr (std::is_same_v<T, float>) {
            act_span_avx2<A>(x + i, bi, y + i, len);
        } else {
            if constexpr (std::is_same_v<T, at::Half>)
                load_block_f16c(x + i, bi, buf, len);
            else
                load_block(x + i, bi, buf, len);
            act_span_avx2<A>(buf, nullptr, buf, len);
            if constexpr (std::is_same_v<T, at::Half>)
                store_block_f16c(buf, y + i, len);
            else
                store_block(buf, y + i, len);
        }
    }
}

#pragma GCC pop_options

template <class T, Activation A>
void bias_act_all(const T * x, const float * b, T * y, int64_t numel, int64_t ncols) {
    static const bool avx2 = linear_best_isa() != LinearIsa::Scalar && __builtin_cpu_supports("f16c");
    at::parallel_for(0, numel, 16384, [&](int64_t begin, int64_t end) {
        if (avx2)
            bias_act_range_avx2<T, A>(x, b, y, ncols, begin, end);
        else
            bias_act_range<T, A>(x, b, y, ncols, begin, end);
    });
}

template <class T>
void bias_act_typed(const at::Tensor & x, const at::Tensor & bias, at::Tensor & y, Activation act) {
    const int64_t numel = x.numel();
    if (numel == 0) return;
    at::Tensor bf = bias.defined() ? bias.to(at::kFloat).contiguous() : at::Tensor();
    const float * b = bf.defined() ? bf.data_ptr<float>() : nullptr;
    const int64_t ncols = bias.defined() ? bias.size(0) : 1;
    const T * xp = x.data_ptr<T>();
    T * yp = y.data_ptr<T>();
    if (act == Activation::Gelu)
        bias_act_all<T, Activation::Gelu>(xp, b, yp, numel, ncols);
    else
        bias_act_all<T, Activation::QuickGelu>(xp, b, yp, numel, ncols);
}

// x and y contiguous, same shape and dtype (y may be x)
void bias_act_into(const at::Tensor & x, const at::Tensor & bias, at::Tensor & y, Activation act) {
    switch (x.scalar_type()) {
        case at::kFloat: bias_act_typed<float>(x, bias, y, act); break;
        case at::kHalf: bias_act_typed<at::Half>(x, bias, y, act); break;
        case at::kBFloat16: bias_act_typed<at::BFloat16>(x, bias, y, act); break;
        default: fail("bias_act: unsupported dtype ", x.scalar_type(), " (f32, f16, bf16)");
    }
}

}  // namespace

at::Tensor bias_act(const at::Tensor & x, const at::Tensor & bias, Activation act) {
    check_bias_act_args(x, bias, act, false);
    at::Tensor xc = x.contiguous();
    at::Tensor y = at::empty_like(xc);
    bias_act_into(xc, bias, y, act);
    return y;
}

void bias_act_(at::Tensor & x, const at::Tensor & bias, Activation act) {
    check_bias_act_args(x, bias, act, true);
    bias_act_into(x, bias, x, act);
}

}  // namespace visionllm::kernels::cpu
