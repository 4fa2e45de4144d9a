// LayerNorm, one block per row: corrected two-pass statistics in fp32 (mean m,
// then c = mean(x - m) and var = mean((x - m)^2) - c^2), reduced with warp
// shuffles; y = ((x - m) - c) * rstd * w + b, one rounding on the way out. The
// row is re-read (from L1/L2) for each pass.
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

// sums a and b over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the totals
__device__ __forceinline__ float2 block_sum2(float a, float b, float2 * shared) {
    for (int o = 16; o > 0; o >>= 1) {
        a += __shfl_xor_sync(0xffffffff, a, o);
        b += __shfl_xor_sync(0xffffffff, b, o);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = make_float2(a, b);
    __syncthreads();
    if (warp == 0) {
        float2 v = lane < int(blockDim.x >> 5) ? shared[lane] : make_float2(0.f, 0.f);
        for (int o = 16; o > 0; o >>= 1) {
            v.x += __shfl_xor_sync(0xffffffff, v.x, o);
            v.y += __shfl_xor_sync(0xffffffff, v.y, o);
        }
        if (lane == 0) shared[32] = v;
    }
    __syncthreads();
    const float2 total = shared[32];
    __syncthreads();  // shared is reused by the next call
    return total;
}

template <class T>
__global__ void layer_norm_kernel(const T * __restrict__ x, const T * __restrict__ w, const T * __restrict__ b,
                                  T * __restrict__ y, int64_t n, float eps) {
    __shared__ float2 shared[33];
    const T * xr = x + int64_t(blockIdx.x) * n;
    T * yr = y + int64_t(blockIdx.x) * n;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += to_f(xr[i]);
    const float m = block_sum2(s, 0.f, shared).x / float(n);
    float sd = 0.f, sq = 0.f;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float d = to_f(xr[i]) - m;
        sd += d;
        sq += d * d;
    }
    const float2 t = block_sum2(sd, sq, shared);
    const float c = t.x / float(n);  // mean = m + c, kept apart: m + c would round at m's magnitude
    const float var = fmaxf(t.y / float(n) - c * c, 0.f);
    const float rstd = rsqrtf(var + eps);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        const float bi = b ? to_f(b[i]) : 0.f;
        yr[i] = from_f<T>(((to_f(xr[i]) - m) - c) * rstd * to_f(w[i]) + bi);
    }
}

template <class T>
void launch(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, at::Tensor & y, float eps) {
    const int64_t n = x.size(-1), rows = n == 0 ? 0 : x.numel() / n;
    if (rows == 0) return;
    VLLM_CHECK(rows < (int64_t(1) << 31), "layer_norm: ", rows, " rows are more than one CUDA grid holds");
    const int threads = n >= 4096 ? 1024 : (n >= 1024 ? 256 : 128);
    auto stream = c10::cuda::getCurrentCUDAStream(x.device().index());
    layer_norm_kernel<T><<<unsigned(rows), threads, 0, stream>>>(
        reinterpret_cast<const T *>(x.data_ptr()), reinterpret_cast<const T *>(w.data_ptr()),
        b.defined() ? reinterpret_cast<const T *>(b.data_ptr()) : nullptr, reinterpret_cast<T *>(y.data_ptr()), n,
        eps);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail("layer_norm: CUDA launch failed: ", cudaGetErrorString(e));
}

}  // namespace

at::Tensor layer_norm(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, double eps) {
    check_layer_norm_args(x, w, b, eps);
    VLLM_CHECK(x.is_cuda() && w.device() == x.device() && (!b.defined() || b.device() == x.device()),
               "layer_norm: x, weight and bias must be on one CUDA device");
    c10::cuda::CUDAGuard guard(x.device());
    at::Tensor xc = x.contiguous(), wc = w.contiguous(), bc = b.defined() ? b.contiguous() : at::Tensor();
    at::Tensor y = at::empty_like(xc);
    switch (x.scalar_type()) {
        case at::kFloat: launch<float>(xc, wc, bc, y, float(eps)); break;
        case at::kHalf: launch<__half>(xc, wc, bc, y, float(eps)); break;
        case at::kBFloat16: launch<__nv_bfloat16>(xc, wc, bc, y, float(eps)); break;
        default: fail("layer_norm: unsupported dtype ", x.scalar_type(), " (f32, f16, bf16)");
    }
    return y;
}

}  // namespace visionllm::kernels::cuda
