// silu(gate) * up, elementwise with a grid-stride loop; fp32 math, one rounding.
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

template <class T>
__global__ void silu_mul_kernel(const T * __restrict__ g, const T * __restrict__ u, T * __restrict__ y, int64_t n) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const float gv = to_f(g[i]);
        // expf(-gv) overflows to inf for very negative gates: gv / inf = -0, silu's limit
        y[i] = from_f<T>(gv / (1.f + expf(-gv)) * to_f(u[i]));
    }
}

template <class T>
void launch(const at::Tensor & g, const at::Tensor & u, at::Tensor & y) {
    const int64_t n = g.numel();
    const int threads = 256;
    const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, int64_t(1) << 20);
    auto stream = c10::cuda::getCurrentCUDAStream(g.device().index());
    silu_mul_kernel<T><<<unsigned(blocks), threads, 0, stream>>>(reinterpret_cast<const T *>(g.data_ptr()),
                                                                  reinterpret_cast<const T *>(u.data_ptr()),
                                                                  reinterpret_cast<T *>(y.data_ptr()), n);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail("silu_mul: CUDA launch failed: ", cudaGetErrorString(e));
}

}  // namespace

at::Tensor silu_mul(const at::Tensor & gate, const at::Tensor & up) {
    check_silu_mul_args(gate, up);
    VLLM_CHECK(gate.is_cuda() && up.device() == gate.device(), "silu_mul: gate and up must be on one CUDA device");
    c10::cuda::CUDAGuard guard(gate.device());
    at::Tensor g = gate.contiguous(), u = up.contiguous();
    at::Tensor y = at::empty_like(g);
    if (y.numel() == 0) return y;
    switch (gate.scalar_type()) {
        case at::kFloat: launch<float>(g, u, y); break;
        case at::kHalf: launch<__half>(g, u, y); break;
        case at::kBFloat16: launch<__nv_bfloat16>(g, u, y); break;
        default: fail("silu_mul: unsupported dtype ", gate.scalar_type(), " (f32, f16, bf16)");
    }
    return y;
}

}  // namespace visionllm::kernels::cuda
