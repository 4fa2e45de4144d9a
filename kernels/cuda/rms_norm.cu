// RMSNorm, one block per row: fp32 sum of squares reduced with warp shuffles.
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/convert.cuh"
#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels::cuda {

namespace {

template <class T>
__global__ void rms_norm_kernel(const T * __restrict__ x, const T * __restrict__ w, T * __restrict__ y, int64_t n,
                                float eps) {
    const T * xr = x + blockIdx.x * n;
    T * yr = y + blockIdx.x * n;
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float v = to_f(xr[i]);
        ss += v * v;
    }
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffff, ss, o);
    __shared__ float warp_sums[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = ss;
    __syncthreads();
    if (warp == 0) {
        ss = lane < (blockDim.x + 31) / 32 ? warp_sums[lane] : 0.f;
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffff, ss, o);
        if (lane == 0) warp_sums[0] = ss;
    }
    __syncthreads();
    const float inv = rsqrtf(warp_sums[0] / float(n) + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
        yr[i] = from_f<T>(to_f(w[i]) * to_f(from_f<T>(to_f(xr[i]) * inv)));
}

template <class T>
void launch(const at::Tensor & x, const at::Tensor & w, at::Tensor & y, float eps) {
    const int64_t n = x.size(-1), rows = n == 0 ? 0 : x.numel() / n;
    if (rows == 0) return;
    const int threads = n >= 1024 ? 1024 : (n >= 256 ? 256 : 128);
    auto stream = c10::cuda::getCurrentCUDAStream(x.device().index());
    rms_norm_kernel<T><<<unsigned(rows), threads, 0, stream>>>(reinterpret_cast<const T *>(x.data_ptr()),
                                                                reinterpret_cast<const T *>(w.data_ptr()),
                                                                reinterpret_cast<T *>(y.data_ptr()), n, eps);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail("rms_norm: CUDA launch failed: ", cudaGetErrorString(e));
}

}  // namespace

at::Tensor rms_norm(const at::Tensor & x, const at::Tensor & w, double eps) {
    VLLM_CHECK(x.dim() >= 1 && w.dim() == 1 && x.size(-1) == w.size(0), "rms_norm: x and weight shapes do not match");
    VLLM_CHECK(x.scalar_type() == w.scalar_type(), "rms_norm: x and weight dtypes differ");
    c10::cuda::CUDAGuard guard(x.device());
    at::Tensor xc = x.contiguous(), wc = w.contiguous();
    at::Tensor y = at::empty_like(xc);
    switch (x.scalar_type()) {
        case at::kFloat: launch<float>(xc, wc, y, float(eps)); break;
        case at::kHalf: launch<__half>(xc, wc, y, float(eps)); break;
        case at::kBFloat16: launch<__nv_bfloat16>(xc, wc, y, float(eps)); break;
        default: fail("rms_norm: unsupported dtype (f32, f16, bf16)");
    }
    return y;
}

}  // namespace visionllm::kernels::cuda
