// The one dispatch header for custom kernels. Each op takes at::Tensor and
// runs on the tensor's device: kernels/cpu/<op>.cpp and kernels/cuda/<op>.cu,
// checked against a naive reference in tests/kernels/<op>_test.cpp.
#pragma once

#include <ATen/core/Tensor.h>

namespace visionllm::kernels {

// LlamaRMSNorm: w * to_dtype(x * rsqrt(mean(x^2) + eps)), statistics in fp32,
// over the last dimension. x: [..., n] f32/f16/bf16 contiguous; w: [n], same dtype.
at::Tensor rms_norm(const at::Tensor & x, const at::Tensor & w, double eps);

namespace cpu {
at::Tensor rms_norm(const at::Tensor & x, const at::Tensor & w, double eps);
}

#ifdef VISIONLLM_WITH_CUDA
namespace cuda {
at::Tensor rms_norm(const at::Tensor & x, const at::Tensor & w, double eps);
}
#endif

// y = x·Wᵀ + b (nn.Linear). x: [..., K]; w: [N, K]; b: [N] or undefined. On the
// CPU, bf16 x and w with at most 8 rows of x take the hand-written GEMV
// (kernels/cpu/linear.cpp: decode is memory-bound); everything else, and CUDA
// (cuBLAS), goes to at::linear.
at::Tensor linear(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b = {});

namespace cpu {
at::Tensor linear(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b = {});
// the CPU's instruction sets for the GEMV path, best last; VISIONLLM_CPU_ISA=avx2|scalar caps the choice
enum class LinearIsa { Scalar, Avx2, Avx512Bf16 };
LinearIsa linear_best_isa();
const char * linear_isa_name(LinearIsa isa);
// the GEMV path with a given instruction set (tests compare them): x [..., K] with <= 8 rows, w [N, K] bf16
at::Tensor gemv_bf16(const at::Tensor & x, const at::Tensor & w, LinearIsa isa);
}  // namespace cpu

}  // namespace visionllm::kernels
