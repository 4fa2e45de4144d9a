// Multi-scale deformable attention core on the device (decoders_det_pose.md §2.2), fp32 accumulation.
//
// A group of g lanes (g = the smallest power of two >= min(D, 32), so a whole warp for D = 32) works on one
// (n, q, m): every lane walks the same L*P samples (their locations and weights are broadcast loads) and owns
// channels d = lane, lane + g, ...; for D = 32 one corner read is one coalesced 128-byte row of value
// [N, S, M, D]. The level table (H, W, start) sits in shared memory. Sampling is the CPU kernel's
// (kernels/cpu/ms_deform_attn.cpp) and the original CUDA kernel's: x = loc_x*W - 0.5, y = loc_y*H - 0.5 in
// fp32, a sample is skipped unless -1 < x < W and -1 < y < H (so NaN/inf locations contribute 0), corners
// outside the level contribute 0. Reads f32/f16/bf16 (locations and weights f32 or value's dtype), rounds the
// output to value's dtype once. 64-bit indexing, CUDAGuard on value's device, the current stream, and a
// launch error is a visionllm::Error (the original only printf'd, leaving silent zeros).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <vector>

#include "kernels/cuda/convert.cuh"
#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels::cuda {

namespace {

constexpr int k_threads = 256;
constexpr int64_t k_max_levels = 1024;  // 24 KiB of shared memory for the level table

struct MsdaArgs {
    int64_t S, Lq, D;
    int M, L, P;
    int gshift;      // log2 of the group size
    int64_t groups;  // N*Lq*M
};

template <class T, class TL>
__global__ void ms_deform_attn_kernel(const T * __restrict__ value, const TL * __restrict__ loc,
                                      const TL * __restrict__ aw, const int64_t * __restrict__ levels,
                                      T * __restrict__ out, MsdaArgs a) {
    extern __shared__ int64_t lv[];  // [L][3]: H, W, start
    for (int i = threadIdx.x; i < 3 * a.L; i += blockDim.x) lv[i] = levels[i];
    __syncthreads();

    const int gs = 1 << a.gshift, lane = threadIdx.x & (gs - 1);
    const int64_t MD = int64_t(a.M) * a.D, LP = int64_t(a.L) * a.P;
    const int64_t stride = (int64_t(gridDim.x) * blockDim.x) >> a.gshift;
    for (int64_t g = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> a.gshift; g < a.groups; g += stride) {
        const int64_t n = g / (a.Lq * a.M), m = g % a.M;
        const T * vm = value + n * a.S * MD + m * a.D;
        const TL * lg = loc + g * LP * 2;
        const TL * wg = aw + g * LP;
        for (int64_t d = lane; d < a.D; d += gs) {
            float acc = 0.f;
            for (int l = 0; l < a.L; ++l) {
                const int64_t H = lv[3 * l], W = lv[3 * l + 1];
                const float Hf = float(H), Wf = float(W);
                const T * vl = vm + lv[3 * l + 2] * MD + d;
                for (int p = 0; p < a.P; ++p) {
                    const int64_t s = int64_t(l) * a.P + p;
                    const float x = to_f(lg[2 * s]) * Wf - 0.5f, y = to_f(lg[2 * s + 1]) * Hf - 0.5f;
                    if (!(x > -1.f && y > -1.f && x < Wf && y < Hf)) continue;  // NaN/inf too
                    const float xf = floorf(x), yf = floorf(y);
                    const int64_t x0 = int64_t(xf), y0 = int64_t(yf);
                    const float fx = x - xf, fy = y - yf;
                    const float w = to_f(wg[s]), wy0 = w * (1.f - fy), wy1 = w * fy;
                    const bool in_x0 = x0 >= 0, in_x1 = x0 + 1 < W;
                    if (y0 >= 0) {
                        const int64_t o = (y0 * W + x0) * MD;
                        if (in_x0) acc += wy0 * (1.f - fx) * to_f(vl[o]);
                        if (in_x1) acc += wy0 * fx * to_f(vl[o + MD]);
                    }
                    if (y0 + 1 < H) {
                        const int64_t o = ((y0 + 1) * W + x0) * MD;
                        if (in_x0) acc += wy1 * (1.f - fx) * to_f(vl[o]);
                        if (in_x1) acc += wy1 * fx * to_f(vl[o + MD]);
                    }
                }
            }
            out[g * a.D + d] = from_f<T>(acc);
        }
    }
}

template <class T, class TL>
void launch(const at::Tensor & value, const at::Tensor & loc, const at::Tensor & aw, const at::Tensor & levels,
            at::Tensor & out, const MsdaArgs & a) {
    const int64_t threads_total = a.groups << a.gshift;
    const int64_t blocks = std::min<int64_t>((threads_total + k_threads - 1) / k_threads, int64_t(1) << 20);
    const size_t smem = size_t(3 * a.L) * sizeof(int64_t);
    auto stream = c10::cuda::getCurrentCUDAStream(value.device().index());
    ms_deform_attn_kernel<T, TL><<<unsigned(blocks), k_threads, smem, stream>>>(
        reinterpret_cast<const T *>(value.data_ptr()), reinterpret_cast<const TL *>(loc.data_ptr()),
        reinterpret_cast<const TL *>(aw.data_ptr()), levels.data_ptr<int64_t>(), reinterpret_cast<T *>(out.data_ptr()),
        a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail("ms_deform_attn: CUDA launch failed: ", cudaGetErrorString(e));
}

template <class T>
void launch_t(const at::Tensor & value, const at::Tensor & loc, const at::Tensor & aw, const at::Tensor & levels,
              at::Tensor & out, const MsdaArgs & a) {
    if (loc.scalar_type() == at::kFloat)
        launch<T, float>(value, loc, aw, levels, out, a);
    else
        launch<T, T>(value, loc, aw, levels, out, a);
}

}  // namespace

at::Tensor ms_deform_attn(const at::Tensor & value, const at::Tensor & spatial_shapes,
                          const at::Tensor & level_start_index, const at::Tensor & sampling_locations,
                          const at::Tensor & attention_weights) {
    check_ms_deform_attn_args(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
    VLLM_CHECK(value.is_cuda() && sampling_locations.device() == value.device() &&
                   attention_weights.device() == value.device(),
               "ms_deform_attn: value, sampling_locations and attention_weights must be on one CUDA device (",
               value.device().str(), ", ", sampling_locations.device().str(), ", ",
               attention_weights.device().str(), ")");
    c10::cuda::CUDAGuard guard(value.device());
    const int64_t N = value.size(0), S = value.size(1), M = value.size(2), D = value.size(3);
    const int64_t Lq = sampling_locations.size(1), L = sampling_locations.size(3), P = sampling_locations.size(4);
    VLLM_CHECK(L <= k_max_levels, "ms_deform_attn: spatial_shapes has ", L, " levels, the CUDA kernel takes at most ",
               k_max_levels);
    VLLM_CHECK(M <= (int64_t(1) << 30) && P <= (int64_t(1) << 30), "ms_deform_attn: M = ", M, " or P = ", P,
               " is too large");
    at::Tensor out = at::empty({N, Lq, M * D}, value.options().memory_format(at::MemoryFormat::Contiguous));
    if (out.numel() == 0) return out;

    // the level table (H, W, start) on the device, from host values
    const at::Tensor ss = spatial_shapes.to(at::kCPU).contiguous();
    std::vector<int64_t> table(3 * L);
    int64_t start = 0;
    for (int64_t l = 0; l < L; ++l) {
        table[3 * l] = ss.data_ptr<int64_t>()[2 * l];
        table[3 * l + 1] = ss.data_ptr<int64_t>()[2 * l + 1];
        table[3 * l + 2] = start;
        start += table[3 * l] * table[3 * l + 1];
    }
    const at::Tensor levels = at::from_blob(table.data(), {L, 3}, at::kLong).to(value.device());

    const at::Tensor v = value.contiguous();
    at::Tensor loc = sampling_locations, aw = attention_weights;
    if (loc.scalar_type() != aw.scalar_type()) {  // one of them f32: both f32
        loc = loc.to(at::kFloat);
        aw = aw.to(at::kFloat);
    }
    loc = loc.contiguous();
    aw = aw.contiguous();
    int gshift = 0;
    while ((int64_t(1) << gshift) < std::min<int64_t>(D, 32)) ++gshift;
    const MsdaArgs a{S, Lq, D, int(M), int(L), int(P), gshift, N * Lq * M};
    switch (value.scalar_type()) {
        case at::kFloat: launch<float, float>(v, loc, aw, levels, out, a); break;
        case at::kHalf: launch_t<__half>(v, loc, aw, levels, out, a); break;
        case at::kBFloat16: launch_t<__nv_bfloat16>(v, loc, aw, levels, out, a); break;
        default: fail("ms_deform_attn: unsupported dtype ", value.scalar_type(), " of value (f32, f16, bf16)");
    }
    return out;
}

}  // namespace visionllm::kernels::cuda
