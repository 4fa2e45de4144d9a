// Rotary embedding: one thread per rotated pair (i, i + D/2) of one (b, t, h)
// row; x is read through its strides, the output is contiguous.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "kernels/cuda/convert.cuh"
#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels::cuda {

namespace {

struct RopeArgs {
    int64_t T, H, D;
    int64_t xs0, xs1, xs2;  // x's strides (elements) on B, T, H
    int64_t cs0;            // cos/sin stride on B: T*D, or 0 when shared by the batch
    int64_t pairs;          // B*T*H*D/2
};

template <class T>
__global__ void rope_kernel(const T * __restrict__ x, const T * __restrict__ cs, const T * __restrict__ sn,
                            T * __restrict__ y, RopeArgs a) {
    const int64_t half = a.D / 2;
    for (int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; idx < a.pairs;
         idx += int64_t(gridDim.x) * blockDim.x) {
        const int64_t i = idx % half, r = idx / half;
        const int64_t h = r % a.H, t = (r / a.H) % a.T, b = r / (a.H * a.T);
        const T * xr = x + b * a.xs0 + t * a.xs1 + h * a.xs2;
        const int64_t c = b * a.cs0 + t * a.D;
        const float x0 = to_f(xr[i]), x1 = to_f(xr[i + half]);
        y[r * a.D + i] = from_f<T>(x0 * to_f(cs[c + i]) - x1 * to_f(sn[c + i]));
        y[r * a.D + i + half] = from_f<T>(x1 * to_f(cs[c + i + half]) + x0 * to_f(sn[c + i + half]));
    }
}

template <class T>
void launch(const at::Tensor & x, const at::Tensor & cs, const at::Tensor & sn, at::Tensor & y, const RopeArgs & a) {
    const int threads = 256;
    const int64_t blocks = std::min<int64_t>((a.pairs + threads - 1) / threads, int64_t(1) << 20);
    auto stream = c10::cuda::getCurrentCUDAStream(x.device().index());
    rope_kernel<T><<<unsigned(blocks), threads, 0, stream>>>(
        reinterpret_cast<const T *>(x.data_ptr()), reinterpret_cast<const T *>(cs.data_ptr()),
        reinterpret_cast<const T *>(sn.data_ptr()), reinterpret_cast<T *>(y.data_ptr()), a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail("rope: CUDA launch failed: ", cudaGetErrorString(e));
}

}  // namespace

at::Tensor rope(const at::Tensor & x, const at::Tensor & cos, const at::Tensor & sin) {
    check_rope_args(x, cos, sin);
    const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
    const bool batched = cos.dim() == 3;
    VLLM_CHECK(x.is_cuda() && cos.device() == x.device() && sin.device() == x.device(),
               "rope: x, cos, sin must be on one CUDA device");
    c10::cuda::CUDAGuard guard(x.device());
    at::Tensor xv = x.stride(3) == 1 ? x : x.contiguous();
    at::Tensor cc = cos.contiguous(), sc = sin.contiguous();
    at::Tensor y = at::empty({B, T, H, D}, x.options().memory_format(at::MemoryFormat::Contiguous));
    if (y.numel() == 0) return y;
    const RopeArgs a{T, H, D, xv.stride(0), xv.stride(1), xv.stride(2), batched ? T * D : 0, y.numel() / 2};
    switch (x.scalar_type()) {
        case at::kFloat: launch<float>(xv, cc, sc, y, a); break;
        case at::kHalf: launch<__half>(xv, cc, sc, y, a); break;
        case at::kBFloat16: launch<__nv_bfloat16>(xv, cc, sc, y, a); break;
        default: fail("rope: unsupported dtype ", x.scalar_type(), " (f32, f16, bf16)");
    }
    return y;
}

}  // namespace visionllm::kernels::cuda
