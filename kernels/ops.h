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

}  // namespace visionllm::kernels
