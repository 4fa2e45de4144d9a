// Multi-scale deformable attention core on the CPU (decoders_det_pose.md §2.2), fp32 accumulation.
//
// Work is split over the (n, q) pairs with at::parallel_for; each pair runs its heads, levels and points in
// order. value is [N, S, M, D], so the D channels of one head at one position are contiguous: a sample works
// out its four corner weights once (times its attention weight) and adds each corner's D-long row with an axpy.
// D = 32 (Grounding DINO's and UniPose's head size) is specialised: the accumulator stays in four AVX registers
// and corners outside the level read a zero row instead of branching. Other D take a generic loop the compiler
// vectorises. The body is compiled twice, for any x86-64 and for AVX2+FMA, picked at run time (linear_best_isa,
// so VISIONLLM_CPU_ISA=scalar forces the portable code).
//
// dtypes: value, locations and weights are widened to fp32 once up front (no-ops for f32), the output is rounded
// to value's dtype once. For a bf16 value that is faster than widening each corner row in the axpy: on the
// realistic encoder case (N=1, Lq=S=22223, M=8, D=32, L=4, P=4, 2 threads of a shared EPYC VM) the per-row
// version took 91 ms, the up-front one 65 ms, its 23 MB conversion included; fp32 takes 60 ms, and the §2.3
// grid_sample algorithm in ATen 1.1-1.3 s.
//
// Sampling, exactly as the original CUDA kernel (ms_deform_im2col_cuda.cuh):
//   x = loc_x * W_l - 0.5, y = loc_y * H_l - 0.5 in fp32; a sample is skipped unless -1 < x < W_l and
//   -1 < y < H_l (then all four corners are outside: zero padding); otherwise each of the corners
//   (floor(y) + {0,1}, floor(x) + {0,1}) inside the level adds w * bilinear weight * value, those outside add 0.
// Non-finite locations (NaN, +-inf) fail that test, so such a sample contributes exactly 0, as in the original
// CUDA kernel that Grounding DINO and VisionLLM v2 run on the GPU. The pure-PyTorch reference
// (`multi_scale_deformable_attention` in transformers 4.40.2, F.grid_sample bilinear/zeros/align_corners=False)
// gives NaN there instead: torch 2.11's grid_sample returns NaN for a NaN or +-inf grid coordinate (checked, f32
// and f64), and the NaN then spreads over all D channels of that query's head. We keep the kernel's 0, which
// the GPU runs of the reference produce. Finite locations far outside, however large, give 0 in both.
// (The AVX2 build may fuse loc*W - 0.5 into one FMA: x then differs by at most half an ulp of loc*W.)
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels {

namespace {

const char * const k_op = "ms_deform_attn: ";

// the tensor's values as int64 on the host (spatial_shapes / level_start_index may live on a device)
std::vector<int64_t> host_int64(const at::Tensor & t) {
    at::Tensor c = t.to(at::kCPU).contiguous();
    const int64_t * p = c.data_ptr<int64_t>();
    return std::vector<int64_t>(p, p + c.numel());
}

}  // namespace

void check_ms_deform_attn_args(const at::Tensor & value, const at::Tensor & spatial_shapes,
                               const at::Tensor & level_start_index, const at::Tensor & sampling_locations,
                               const at::Tensor & attention_weights) {
    VLLM_CHECK(value.defined(), k_op, "value is an undefined tensor");
    VLLM_CHECK(spatial_shapes.defined(), k_op, "spatial_shapes is an undefined tensor");
    VLLM_CHECK(level_start_index.defined(), k_op, "level_start_index is an undefined tensor");
    VLLM_CHECK(sampling_locations.defined(), k_op, "sampling_locations is an undefined tensor");
    VLLM_CHECK(attention_weights.defined(), k_op, "attention_weights is an undefined tensor");

    const at::ScalarType t = value.scalar_type();
    VLLM_CHECK(t == at::kFloat || t == at::kHalf || t == at::kBFloat16, k_op, "unsupported dtype ", t,
               " of value (f32, f16, bf16)");
    VLLM_CHECK(value.dim() == 4, k_op, "value must be [N, S, M, D], got ", value.sizes());
    const int64_t N = value.size(0), S = value.size(1), M = value.size(2), D = value.size(3);
    VLLM_CHECK(D >= 1, k_op, "value ", value.sizes(), " has head dim D = 0 (D >= 1)");

    VLLM_CHECK(spatial_shapes.scalar_type() == at::kLong, k_op, "spatial_shapes must be int64, got ",
               spatial_shapes.scalar_type());
    VLLM_CHECK(spatial_shapes.dim() == 2 && spatial_shapes.size(1) == 2 && spatial_shapes.size(0) >= 1, k_op,
               "spatial_shapes must be [L, 2] (H, W) with L >= 1, got ", spatial_shapes.sizes());
    const int64_t L = spatial_shapes.size(0);
    VLLM_CHECK(level_start_index.scalar_type() == at::kLong, k_op, "level_start_index must be int64, got ",
               level_start_index.scalar_type());
    VLLM_CHECK(level_start_index.dim() == 1 && level_start_index.size(0) == L, k_op,
               "level_start_index must be [L] = [", L, "] (L from spatial_shapes ", spatial_shapes.sizes(), "), got ",
               level_start_index.sizes());

    const at::IntArrayRef ls = sampling_locations.sizes();
    VLLM_CHECK(sampling_locations.dim() == 6 && ls[0] == N && ls[2] == M && ls[3] == L && ls[5] == 2, k_op,
               "sampling_locations must be [N, Lq, M, L, P, 2] = [", N, ", Lq, ", M, ", ", L,
               ", P, 2] (N, M from value ", value.sizes(), ", L from spatial_shapes), got ", ls);
    const int64_t Lq = ls[1], P = ls[4];
    VLLM_CHECK(attention_weights.dim() == 5 && attention_weights.sizes() == ls.slice(0, 5), k_op,
               "attention_weights must be [N, Lq, M, L, P] = ", ls.slice(0, 5), " (from sampling_locations ", ls,
               "), got ", attention_weights.sizes());
    (void)Lq;
    (void)P;
    const at::ScalarType tl = sampling_locations.scalar_type(), tw = attention_weights.scalar_type();
    VLLM_CHECK(tl == at::kFloat || tl == t, k_op, "sampling_locations must be f32 or value's dtype ", t, ", got ", tl);
    VLLM_CHECK(tw == at::kFloat || tw == t, k_op, "attention_weights must be f32 or value's dtype ", t, ", got ", tw);

    // the level table: every H, W >= 1, S = sum H*W, starts = exclusive cumsum
    const std::vector<int64_t> hw = host_int64(spatial_shapes), st = host_int64(level_start_index);
    int64_t sum = 0;
    for (int64_t l = 0; l < L; ++l) {
        const int64_t H = hw[2 * l], W = hw[2 * l + 1];
        VLLM_CHECK(H >= 1 && W >= 1, k_op, "spatial_shapes level ", l, " is ", H, "x", W, " (H, W >= 1)");
        VLLM_CHECK(st[l] == sum, k_op, "level_start_index[", l, "] = ", st[l],
                   " is not the sum of the earlier levels' H*W from spatial_shapes (", sum, ")");
        VLLM_CHECK(H <= S && W <= S / H && sum <= S - H * W, k_op, "spatial_shapes: levels 0..", l,
                   " hold more than value's S = ", S, " positions (level ", l, " is ", H, "x", W, ")");
        sum += H * W;
    }
    VLLM_CHECK(sum == S, k_op, "value has S = ", S, " positions but spatial_shapes sums to ", sum);
}

}  // namespace visionllm::kernels

namespace visionllm::kernels::cpu {

namespace {

#define VLLM_INLINE inline __attribute__((always_inline))
#define VLLM_AVX2 __attribute__((target("avx2,fma")))

struct Level {
    int64_t H, W, start;
    float Hf, Wf;
};

struct Args {
    const float * value;  // [N, S, M, D]
    const float * loc;    // [N, Lq, M, L, P, 2]
    const float * aw;     // [N, Lq, M, L, P]
    const Level * lv;     // [L]
    int64_t S, M, D, Lq, L, P;
};

VLLM_INLINE uint16_t f_to_bf16(float f) {  // round to nearest even, NaN stays NaN
    const uint32_t u = __builtin_bit_cast(uint32_t, f);
    const uint16_t r = uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
    return f != f ? uint16_t(0x7fc0) : r;
}

// One sample's corners: x = loc_x*W - 0.5, y = loc_y*H - 0.5; false when all four are outside (NaN and inf
// included). Otherwise (x0, y0) = floor, (fx, fy) the fractions.
struct Corners {
    int64_t x0, y0;
    float fx, fy;
};
VLLM_INLINE bool corners(const float * loc, const Level & lv, Corners & c) {
    const float x = loc[0] * lv.Wf - 0.5f, y = loc[1] * lv.Hf - 0.5f;
    if (!(x > -1.f && y > -1.f && x < lv.Wf && y < lv.Hf)) return false;
    int64_t x0 = int64_t(x), y0 = int64_t(y);  // floor: truncation, then one down on (-1, 0)
    x0 -= float(x0) > x;
    y0 -= float(y0) > y;
    c = {x0, y0, x - float(x0), y - float(y0)};
    return true;
}

// ---- any D: the accumulator is a D-long fp32 row, corners outside the level are skipped

VLLM_INLINE void axpy(float * __restrict acc, float w, const float * __restrict row, int64_t D) {
    for (int64_t d = 0; d < D; ++d) acc[d] += w * row[d];
}

// acc[0, D) += the L*P samples of one (n, q, m); vm: value at [n, 0, m, 0]; loc, aw: this (n, q, m)'s samples
VLLM_INLINE void head(float * __restrict acc, const float * vm, const float * __restrict loc,
                      const float * __restrict aw, const Args & a) {
    const int64_t D = a.D, MD = a.M * D;
    for (int64_t l = 0; l < a.L; ++l) {
        const Level & lv = a.lv[l];
        const float * vl = vm + lv.start * MD;
        for (int64_t p = 0; p < a.P; ++p, loc += 2, ++aw) {
            Corners c;
            if (!corners(loc, lv, c)) continue;
            const float wy0 = *aw * (1.f - c.fy), wy1 = *aw * c.fy;
            const bool in_x0 = c.x0 >= 0, in_x1 = c.x0 + 1 < lv.W;
            const int64_t o = (c.y0 * lv.W + c.x0) * MD, o1 = o + lv.W * MD;  // pointers only formed in bounds
            if (c.y0 >= 0) {
                if (in_x0) axpy(acc, wy0 * (1.f - c.fx), vl + o, D);
                if (in_x1) axpy(acc, wy0 * c.fx, vl + (o + MD), D);
            }
            if (c.y0 + 1 < lv.H) {
                if (in_x0) axpy(acc, wy1 * (1.f - c.fx), vl + o1, D);
                if (in_x1) axpy(acc, wy1 * c.fx, vl + (o1 + MD), D);
            }
        }
    }
}

// ---- D = 8*NV known at compile time: the accumulator is NV vectors of 8 floats in registers (GCC vector
// extensions: AVX in the AVX2 build, pairs of SSE registers in the portable one). Corners outside the level read a
// zero row instead of being branched around (branches around the adds send the accumulator through memory; this is
// 15% faster on the encoder case).

typedef float v8f __attribute__((vector_size(32)));
template <int NV>
struct VecAcc {
    v8f v[NV];
};
template <int NV>
VLLM_INLINE void axpy(VecAcc<NV> & acc, float w, const float * __restrict row) {
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) {
        v8f r;
        std::memcpy(&r, row + 8 * j, sizeof(r));
        acc.v[j] += w * r;
    }
}

template <int NV>
VLLM_INLINE void head(VecAcc<NV> & acc, const float * vm, const float * __restrict loc, const float * __restrict aw,
                      const Args & a, const float * zero) {
    const int64_t MD = a.M * 8 * NV;
    for (int64_t l = 0; l < a.L; ++l) {
        const Level & lv = a.lv[l];
        const float * vl = vm + lv.start * MD;
        for (int64_t p = 0; p < a.P; ++p, loc += 2, ++aw) {
            Corners c;
            if (!corners(loc, lv, c)) continue;
            const float wy0 = *aw * (1.f - c.fy), wy1 = *aw * c.fy;
            const bool in_x0 = c.x0 >= 0, in_x1 = c.x0 + 1 < lv.W, in_y0 = c.y0 >= 0, in_y1 = c.y0 + 1 < lv.H;
            const int64_t o = (c.y0 * lv.W + c.x0) * MD, o1 = o + lv.W * MD;
            axpy(acc, wy0 * (1.f - c.fx), in_y0 && in_x0 ? vl + o : zero);
            axpy(acc, wy0 * c.fx, in_y0 && in_x1 ? vl + (o + MD) : zero);
            axpy(acc, wy1 * (1.f - c.fx), in_y1 && in_x0 ? vl + o1 : zero);
            axpy(acc, wy1 * c.fx, in_y1 && in_x1 ? vl + (o1 + MD) : zero);
        }
    }
}

// ---- pairs [i0, i1) of (n, q). O: the output's storage (float, uint16_t for bf16 bits, at::Half); DC: the head
// size when it is known at compile time (0: a.D). scratch: D floats; zero: D zeros.
template <class O, int DC>
VLLM_INLINE void pairs(O * out, const Args & a, int64_t i0, int64_t i1, float * scratch, const float * zero) {
    const int64_t D = DC > 0 ? DC : a.D, M = a.M, LP = a.L * a.P;
    for (int64_t i = i0; i < i1; ++i) {
        const float * vn = a.value + (i / a.Lq) * a.S * M * D;
        for (int64_t m = 0; m < M; ++m) {
            const int64_t h = i * M + m;  // (n, q, m)
            O * o = out + h * D;
            float * acc = std::is_same_v<O, float> ? reinterpret_cast<float *>(o) : scratch;
            if constexpr (DC > 0) {
                VecAcc<DC / 8> v{};
                head(v, vn + m * D, a.loc + h * LP * 2, a.aw + h * LP, a, zero);
                std::memcpy(acc, v.v, sizeof(v.v));
            } else {
                for (int64_t d = 0; d < D; ++d) acc[d] = 0.f;
                head(acc, vn + m * D, a.loc + h * LP * 2, a.aw + h * LP, a);
            }
            if constexpr (std::is_same_v<O, uint16_t>) {
                for (int64_t d = 0; d < D; ++d) o[d] = f_to_bf16(acc[d]);
            } else if constexpr (std::is_same_v<O, at::Half>) {
                for (int64_t d = 0; d < D; ++d) o[d] = at::Half(acc[d]);
            }
        }
    }
}

template <class O, int DC>
void pairs_generic(O * out, const Args & a, int64_t i0, int64_t i1, float * scratch, const float * zero) {
    pairs<O, DC>(out, a, i0, i1, scratch, zero);
}
template <class O, int DC>
VLLM_AVX2 void pairs_avx2(O * out, const Args & a, int64_t i0, int64_t i1, float * scratch, const float * zero) {
    pairs<O, DC>(out, a, i0, i1, scratch, zero);
}

template <class O>
void run(O * out, const Args & a, int64_t pairs_total) {
    static const bool avx2 = linear_best_isa() != LinearIsa::Scalar;
    // tasks of about 64K multiply-adds
    const int64_t work = std::max<int64_t>(1, a.M * a.L * a.P * (4 * a.D + 16));
    const int64_t grain = std::max<int64_t>(1, 65536 / work);
    at::parallel_for(0, pairs_total, grain, [&](int64_t i0, int64_t i1) {
        std::vector<float> scratch(a.D), zero(a.D, 0.f);
        if (a.D == 32) {
            if (avx2)
                pairs_avx2<O, 32>(out, a, i0, i1, scratch.data(), zero.data());
            else
                pairs_generic<O, 32>(out, a, i0, i1, scratch.data(), zero.data());
        } else {
            if (avx2)
                pairs_avx2<O, 0>(out, a, i0, i1, scratch.data(), zero.data());
            else
                pairs_generic<O, 0>(out, a, i0, i1, scratch.data(), zero.data());
        }
    });
}

}  // namespace

at::Tensor ms_deform_attn(const at::Tensor & value, const at::Tensor & spatial_shapes,
                          const at::Tensor & level_start_index, const at::Tensor & sampling_locations,
                          const at::Tensor & attention_weights) {
    check_ms_deform_attn_args(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
    VLLM_CHECK(value.device().is_cpu() && sampling_locations.device().is_cpu() && attention_weights.device().is_cpu(),
               "ms_deform_attn: value, sampling_locations and attention_weights must be CPU tensors here (",
               value.device().str(), ", ", sampling_locations.device().str(), ", ", attention_weights.device().str(),
               ")");
    const int64_t N = value.size(0), S = value.size(1), M = value.size(2), D = value.size(3);
    const int64_t Lq = sampling_locations.size(1), L = sampling_locations.size(3), P = sampling_locations.size(4);
    const at::ScalarType t = value.scalar_type();
    at::Tensor out = at::empty({N, Lq, M * D}, value.options().memory_format(at::MemoryFormat::Contiguous));
    if (out.numel() == 0) return out;
    if (P == 0) return out.zero_();

    const std::vector<int64_t> hw = host_int64(spatial_shapes);
    std::vector<Level> levels(L);
    int64_t start = 0;
    for (int64_t l = 0; l < L; ++l) {
        const int64_t H = hw[2 * l], W = hw[2 * l + 1];
        levels[l] = {H, W, start, float(H), float(W)};
        start += H * W;
    }
    // everything in fp32 (no-ops for f32 contiguous inputs)
    const at::Tensor v = value.to(at::kFloat).contiguous();
    const at::Tensor loc = sampling_locations.to(at::kFloat).contiguous();
    const at::Tensor aw = attention_weights.to(at::kFloat).contiguous();
    const Args a{v.data_ptr<float>(), loc.data_ptr<float>(), aw.data_ptr<float>(), levels.data(), S, M, D, Lq, L, P};
    switch (t) {
        case at::kFloat: run(out.data_ptr<float>(), a, N * Lq); break;
        case at::kBFloat16: run(reinterpret_cast<uint16_t *>(out.data_ptr()), a, N * Lq); break;
        case at::kHalf: run(out.data_ptr<at::Half>(), a, N * Lq); break;
        default: fail("ms_deform_attn: unsupported dtype ", t, " of value (f32, f16, bf16)");
    }
    return out;
}

}  // namespace visionllm::kernels::cpu
