// act(x + bias) elementwise with a grid-stride loop; fp32 math, one rounding.
// Each thread step moves one 16-byte vector (4 f32 or 8 f16/bf16) when the
// sizes and pointers allow it (numel and the bias length multiples of the
// vector, 16-byte aligned data), else one element. x may equal y (in place).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/convert.cuh"
#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels::cuda {

namespace {

template <class T, int V>
struct alignas(sizeof(T) * V) Vec {
    T v[V];
};

template <Activation A>
__device__ __forceinline__ float act(float v) {
    if constexpr (A == Activation::Gelu) {
        return v * normcdff(v);  // Phi(x), accurate in both tails (no 1 + erf cancellation)
    } else {
        // e^(-1.702 v) with the argument split exactly (as on the CPU): 1.702 = k_hi + k_lo with 12-bit k_hi, and
        // v on a 2^-6 grid (12 bits below 64) plus a remainder, so that k_hi * vh is exact and the rounding of
        // 1.702 * v (~5e-6 absolute near 85) does not become a relative error of the result
        const float a = fminf(fmaxf(v, -60.f), 60.f);  // beyond +-52 the result saturates; NaN stays in v
        const float vh = __fsub_rn(__fadd_rn(a, 196608.f), 196608.f), vl = __fsub_rn(a, vh);
        const float k_hi = 1.7021484375f, k_lo = -1.484375e-4f;
        // expf overflows to inf for very negative v: v / inf = -0, the limit
        const float e = expf(-__fmul_rn(k_hi, vh)) * expf(-(k_hi * vl + k_lo * a));
        return v / (1.f + e);
    }
}

// V elements per step; bias (may be null) indexed by the column, ncols a multiple of V
template <class T, int V, Activation A>
__global__ void bias_act_kernel(const T * x, const T * __restrict__ bias, T * y, int64_t nvec, int64_t ncols) {
    using VT = Vec<T, V>;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < nvec; i += int64_t(gridDim.x) * blockDim.x) {
        const VT xv = reinterpret_cast<const VT *>(x)[i];
        VT bv;
        if (bias) bv = *reinterpret_cast<const VT *>(bias + (i * V) % ncols);
        VT out;
#pragma unroll
        for (int k = 0; k < V; ++k) {
            float v = to_f(xv.v[k]);
            if (bias) v += to_f(bv.v[k]);
            out.v[k] = from_f<T>(act<A>(v));
        }
        reinterpret_cast<VT *>(y)[i] = out;
    }
}

template <class T, int V>
void launch_v(const T * x, const T * bias, T * y, int64_t numel, int64_t ncols, Activation act,
              cudaStream_t stream) {
    const int64_t nvec = numel / V;
    const int threads = 256;
    const int64_t blocks = std::min<int64_t>((nvec + threads - 1) / threads, int64_t(1) << 20);
    if (act == Activation::Gelu)
        bias_act_kernel<T, V, Activation::Gelu><<<unsigned(blocks), threads, 0, stream>>>(x, bias, y, nvec, ncols);
    else
        bias_act_kernel<T, V, Activation::QuickGelu>
            <<<unsigned(blocks), threads, 0, stream>>>(x, bias, y, nvec, ncols);
}

bool aligned16(const void * p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// x, y contiguous on one device, same shape (y may be x)
template <class T>
void launch(const at::Tensor & x, const at::Tensor & bias, at::Tensor & y, Activation act) {
    const int64_t numel = x.numel();
    if (numel == 0) return;
    const T * xp = reinterpret_cast<const T *>(x.data_ptr());
    const T * bp = bias.defined() ? reinterpret_cast<const T *>(bias.data_ptr()) : nullptr;
    T * yp = reinterpret_cast<T *>(y.data_ptr());
    const int64_t ncols = bias.defined() ? bias.numel() : 1;
    constexpr int V = 16 / sizeof(T);
    auto stream = c10::cuda::getCurrentCUDAStream(x.device().index());
    const bool vec = numel % V == 0 && aligned16(xp) && aligned16(yp) && (!bp || (ncols % V == 0 && aligned16(bp)));
    if (vec)
        launch_v<T, V>(xp, bp, yp, numel, ncols, act, stream);
    else
        launch_v<T, 1>(xp, bp, yp, numel, ncols, act, stream);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail("bias_act: CUDA launch failed: ", cudaGetErrorString(e));
}

void bias_act_into(const at::Tensor & x, const at::Tensor & bias, at::Tensor & y, Activation act) {
    switch (x.scalar_type()) {
        case at::kFloat: launch<float>(x, bias, y, act); break;
        case at::kHalf: launch<__half>(x, bias, y, act); break;
        case at::kBFloat16: launch<__nv_bfloat16>(x, bias, y, act); break;
        default: fail("bias_act: unsupported dtype ", x.scalar_type(), " (f32, f16, bf16)");
    }
}

void check_devices(const at::Tensor & x, const at::Tensor & bias, const char * op) {
    VLLM_CHECK(x.is_cuda() && (!bias.defined() || bias.device() == x.device()), op,
               ": x and bias must be on one CUDA device");
}

}  // namespace

at::Tensor bias_act(const at::Tensor & x, const at::Tensor & bias, Activation act) {
    check_bias_act_args(x, bias, act, false);
    check_devices(x, bias, "bias_act");
    c10::cuda::CUDAGuard guard(x.device());
    at::Tensor xc = x.contiguous(), bc = bias.defined() ? bias.contiguous() : at::Tensor();
    at::Tensor y = at::empty_like(xc);
    bias_act_into(xc, bc, y, act);
    return y;
}

void bias_act_(at::Tensor & x, const at::Tensor & bias, Activation act) {
    check_bias_act_args(x, bias, act, true);
    check_devices(x, bias, "bias_act_");
    c10::cuda::CUDAGuard guard(x.device());
    at::Tensor bc = bias.defined() ? bias.contiguous() : at::Tensor();
    bias_act_into(x, bc, x, act);
}

}  // namespace visionllm::kernels::cuda
