// y = x·Wᵀ (+ b) for bf16 weights and a few rows of x: the decode hot path.
// A token's decode reads every weight once, so this is memory-bound: each
// thread streams whole weight rows and keeps the few x rows in registers
// (fp32), accumulating in fp32. Two instruction sets, picked at run time:
// AVX-512 BF16 (vdpbf16ps on bf16 pairs) and AVX2+FMA (bf16 widened to fp32
// by a 16-bit shift, exact). Larger batches (prefill) go to ATen's GEMM, which
// is compute-bound and already near the machine's peak.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <immintrin.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/ops.h"
#include "visionllm/error.h"

// GCC 12's AVX-512 headers trip -Wmaybe-uninitialized inside _mm512_reduce_add_ps and masked loads
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace visionllm::kernels::cpu {

namespace {

constexpr int64_t k_max_rows = 8;  // rows of x the GEMV path takes; more go to GEMM

inline float bf16_to_f(uint16_t b) {
    uint32_t u = uint32_t(b) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// ---- portable path (any x86-64; also the reference for the SIMD paths' tails)
void gemv_scalar(const uint16_t * w, const float * x, float * y, int64_t n0, int64_t n1, int64_t K, int64_t M,
                 int64_t N) {
    for (int64_t n = n0; n < n1; ++n) {
        const uint16_t * wr = w + n * K;
        for (int64_t m = 0; m < M; ++m) {
            const float * xm = x + m * K;
            float s = 0.f;
            for (int64_t k = 0; k < K; ++k) s += bf16_to_f(wr[k]) * xm[k];
            y[m * N + n] = s;
        }
    }
}

// ---- AVX2 + FMA: R weight rows by M x rows, 16 bf16 (one 256-bit load) per step. unpacklo/hi with
// zero widen words {0-3, 8-11} and {4-7, 12-15} to fp32 in one op each, so x is stored in that order
// (permute_x): half the load and shuffle work of widening 8 words at a time, which measured ~20 GB/s
// against ~24.5 for this form and for a plain read on an AVX2 EPYC.
__attribute__((target("avx2,fma"))) inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// x [M, K] fp32 -> per 16-block: x[0..3], x[8..11], x[4..7], x[12..15]; the tail (K % 16) stays in order
std::vector<float> permute_x(const float * x, int64_t M, int64_t K) {
    std::vector<float> p(size_t(M * K));
    const int64_t K16 = K & ~int64_t(15);
    static const int order[16] = {0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 12, 13, 14, 15};
    for (int64_t m = 0; m < M; ++m) {
        const float * xm = x + m * K;
        float * pm = p.data() + m * K;
        for (int64_t k = 0; k < K16; k += 16)
            for (int i = 0; i < 16; ++i) pm[k + i] = xm[k + order[i]];
        for (int64_t k = K16; k < K; ++k) pm[k] = xm[k];
    }
    return p;
}

template <int R, int M>
__attribute__((target("avx2,fma"))) void gemv_avx2_block(const uint16_t * w, const float * xp, const float * x,
                                                         float * y, int64_t n, int64_t K, int64_t N) {
    __m256 lo[R][M], hi[R][M];
    for (int r = 0; r < R; ++r)
        for (int m = 0; m < M; ++m) lo[r][m] = hi[r][m] = _mm256_setzero_ps();
    const __m256i zero = _mm256_setzero_si256();
    const int64_t K16 = K & ~int64_t(15);
    for (int64_t k = 0; k < K16; k += 16) {
        __m256 xl[M], xh[M];
        for (int m = 0; m < M; ++m) {
            xl[m] = _mm256_loadu_ps(xp + m * K + k);
            xh[m] = _mm256_loadu_ps(xp + m * K + k + 8);
        }
        for (int r = 0; r < R; ++r) {
            const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i *>(w + (n + r) * K + k));
            const __m256 wl = _mm256_castsi256_ps(_mm256_unpacklo_epi16(zero, v));
            const __m256 wh = _mm256_castsi256_ps(_mm256_unpackhi_epi16(zero, v));
            for (int m = 0; m < M; ++m) {
                lo[r][m] = _mm256_fmadd_ps(wl, xl[m], lo[r][m]);
                hi[r][m] = _mm256_fmadd_ps(wh, xh[m], hi[r][m]);
            }
        }
    }
    for (int r = 0; r < R; ++r) {
        const uint16_t * wr = w + (n + r) * K;
        for (int m = 0; m < M; ++m) {
            float s = hsum256(_mm256_add_ps(lo[r][m], hi[r][m]));
            for (int64_t k = K16; k < K; ++k) s += bf16_to_f(wr[k]) * x[m * K + k];
            y[m * N + n + r] = s;
        }
    }
}

template <int M>
__attribute__((target("avx2,fma"))) void gemv_avx2(const uint16_t * w, const float * xp, const float * x, float * y,
                                                   int64_t n0, int64_t n1, int64_t K, int64_t N) {
    constexpr int R = M == 1 ? 4 : (M == 2 ? 2 : 1);
    int64_t n = n0;
    for (; n + R <= n1; n += R) gemv_avx2_block<R, M>(w, xp, x, y, n, K, N);
    for (; n < n1; ++n) gemv_avx2_block<1, M>(w, xp, x, y, n, K, N);
}

// ---- AVX-512 BF16: x rounded to bf16 pairs, vdpbf16ps accumulates in fp32
__attribute__((target("avx512f,avx512bw,avx512bf16"))) void gemv_avx512bf16_rows(const uint16_t * w,
                                                                                 const uint16_t * xb, float * y,
                                                                                 int64_t n0, int64_t n1, int64_t K,
                                                                                 int64_t M, int64_t N) {
    const int64_t K32 = K & ~int64_t(31);
    const __mmask32 tail = K32 == K ? 0 : __mmask32((1ull << (K - K32)) - 1);
    int64_t n = n0;
    // four weight rows at a time for one x row at a time keeps 4 accumulators and 4 streams
    for (; n < n1; n += 4) {
        const int R = int(n1 - n < 4 ? n1 - n : 4);
        for (int64_t m = 0; m < M; ++m) {
            __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
            const uint16_t * xm = xb + m * K;
            for (int64_t k = 0; k < K32; k += 32) {
                const __m512i xv = _mm512_loadu_si512(xm + k);
                for (int r = 0; r < R; ++r) {
                    const __m512i wv = _mm512_loadu_si512(w + (n + r) * K + k);
                    acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)wv, (__m512bh)xv);
                }
            }
            if (tail) {
                const __m512i xv = _mm512_maskz_loadu_epi16(tail, xm + K32);
                for (int r = 0; r < R; ++r) {
                    const __m512i wv = _mm512_maskz_loadu_epi16(tail, w + (n + r) * K + K32);
                    acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)wv, (__m512bh)xv);
                }
            }
            for (int r = 0; r < R; ++r) y[m * N + n + r] = _mm512_reduce_add_ps(acc[r]);
        }
    }
}

}  // namespace

const char * linear_isa_name(LinearIsa isa) {
    switch (isa) {
        case LinearIsa::Scalar: return "scalar";
        case LinearIsa::Avx2: return "avx2";
        case LinearIsa::Avx512Bf16: return "avx512bf16";
    }
    return "?";
}

LinearIsa linear_best_isa() {
    static const LinearIsa best = [] {
        LinearIsa b = LinearIsa::Scalar;
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) b = LinearIsa::Avx2;
        if (__builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw")) b = LinearIsa::Avx512Bf16;
        // VISIONLLM_CPU_ISA=avx2|scalar caps the choice (tests, comparisons)
        if (const char * cap = std::getenv("VISIONLLM_CPU_ISA")) {
            const std::string c = cap;
            if (c == "scalar") b = LinearIsa::Scalar;
            else if (c == "avx2" && b == LinearIsa::Avx512Bf16) b = LinearIsa::Avx2;
        }
        return b;
    }();
    return best;
}

at::Tensor gemv_bf16(const at::Tensor & x, const at::Tensor & w, LinearIsa isa) {
    VLLM_CHECK(w.scalar_type() == at::kBFloat16 && w.dim() == 2, "linear: gemv needs a 2-D bf16 weight, got ",
               w.scalar_type(), " ", w.sizes());
    VLLM_CHECK(x.size(-1) == w.size(1), "linear: x ", x.sizes(), " does not match weight ", w.sizes());
    VLLM_CHECK(isa <= linear_best_isa() || isa == LinearIsa::Scalar, "linear: this CPU lacks ", linear_isa_name(isa));
    const int64_t K = w.size(1), N = w.size(0), M = K == 0 ? 0 : x.numel() / K;
    VLLM_CHECK(M <= k_max_rows, "linear: gemv takes at most ", k_max_rows, " rows, got ", M);
    at::Tensor wc = w.is_contiguous() ? w : w.contiguous();
    const uint16_t * wp = reinterpret_cast<const uint16_t *>(wc.data_ptr());
    std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
    out_shape.back() = N;
    at::Tensor yf = at::empty({M, N}, at::kFloat);
    float * yp = yf.data_ptr<float>();
    // x rounded to bf16 first: torch's bf16 linear sees the same bf16 input values
    at::Tensor xf = x.reshape({M, K}).to(at::kBFloat16).to(at::kFloat).contiguous();
    at::Tensor xb = xf.to(at::kBFloat16).contiguous();
    const float * xp = xf.data_ptr<float>();
    const std::vector<float> xperm = isa == LinearIsa::Avx2 ? permute_x(xp, M, K) : std::vector<float>();
    const float * xpp = xperm.data();
    const uint16_t * xbp = reinterpret_cast<const uint16_t *>(xb.data_ptr());
    // grain: whole cache lines of rows per task, enough rows to amortise the split
    at::parallel_for(0, N, 64, [&](int64_t n0, int64_t n1) {
        switch (isa) {
            case LinearIsa::Avx512Bf16: gemv_avx512bf16_rows(wp, xbp, yp, n0, n1, K, M, N); break;
            case LinearIsa::Avx2:
                switch (M) {
                    case 1: gemv_avx2<1>(wp, xpp, xp, yp, n0, n1, K, N); break;
                    case 2: gemv_avx2<2>(wp, xpp, xp, yp, n0, n1, K, N); break;
                    case 3: gemv_avx2<3>(wp, xpp, xp, yp, n0, n1, K, N); break;
                    case 4: gemv_avx2<4>(wp, xpp, xp, yp, n0, n1, K, N); break;
                    default:  // 5..8 rows: two passes over the weights, still one read each of 4 rows
                        gemv_avx2<4>(wp, xpp, xp, yp, n0, n1, K, N);
                        for (int64_t m = 4; m < M; ++m)
                            gemv_avx2<1>(wp, xpp + m * K, xp + m * K, yp + m * N, n0, n1, K, N);
                }
                break;
            case LinearIsa::Scalar: gemv_scalar(wp, xp, yp, n0, n1, K, M, N); break;
        }
    });
    return yf.to(x.scalar_type()).view(out_shape);
}

at::Tensor linear(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b) {
    VLLM_CHECK(w.dim() == 2, "linear: weight must be 2-D, got ", w.sizes());
    VLLM_CHECK(x.dim() >= 1 && x.size(-1) == w.size(1), "linear: x ", x.sizes(), " does not match weight ",
               w.sizes());
    VLLM_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(0)), "linear: bias ", b.sizes(),
               " does not match weight ", w.sizes());
    const int64_t K = w.size(1), M = K == 0 ? 0 : x.numel() / K;
    if (w.scalar_type() == at::kBFloat16 && x.scalar_type() == at::kBFloat16 && M > 0 && M <= k_max_rows &&
        linear_best_isa() != LinearIsa::Scalar) {
        at::Tensor y = gemv_bf16(x, w, linear_best_isa());
        return b.defined() ? y + b : y;
    }
    if (w.scalar_type() == at::kBFloat16 && x.scalar_type() == at::kBFloat16 && M > k_max_rows &&
        linear_best_isa() != LinearIsa::Avx512Bf16) {
        // without native bf16 dot products ATen's bf16 GEMM is several times slower than its fp32 one
        // (10 vs 47 GFLOP/s on an AVX2 EPYC), so blocks of weight rows are widened to fp32 first
        at::Tensor xf = x.reshape({M, K}).to(at::kFloat);
        const int64_t N = w.size(0), block = std::max<int64_t>(1, (int64_t(8) << 20) / std::max<int64_t>(K, 1));
        at::Tensor y = at::empty({M, N}, x.options());
        for (int64_t n0 = 0; n0 < N; n0 += block) {
            const int64_t nb = std::min(block, N - n0);
            at::Tensor yb = at::mm(xf, w.narrow(0, n0, nb).to(at::kFloat).t());
            if (b.defined()) yb += b.narrow(0, n0, nb).to(at::kFloat);
            y.narrow(1, n0, nb).copy_(yb);
        }
        std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
        shape.back() = N;
        return y.view(shape);
    }
    return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

}  // namespace visionllm::kernels::cpu
