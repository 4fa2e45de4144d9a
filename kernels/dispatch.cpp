// Device dispatch for kernels/ops.h.
#include "kernels/ops.h"

#include <ATen/ops/linear.h>

#include "visionllm/error.h"

namespace visionllm::kernels {

namespace {
void check_same_device(const at::Tensor & a, const at::Tensor & b, const char * op) {
    if (a.device() != b.device())
        fail(op, ": inputs are on different devices (", a.device().str(), " and ", b.device().str(), ")");
}
}  // namespace

at::Tensor rms_norm(const at::Tensor & x, const at::Tensor & w, double eps) {
    check_same_device(x, w, "rms_norm");
    if (x.is_cuda()) {
#ifdef VISIONLLM_WITH_CUDA
        return cuda::rms_norm(x, w, eps);
#else
        fail("rms_norm: CUDA tensor given, but this build has no CUDA kernels");
#endif
    }
    return cpu::rms_norm(x, w, eps);
}

}  // namespace visionllm::kernels

namespace visionllm::kernels {

at::Tensor linear(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b) {
    check_same_device(x, w, "linear");
    if (b.defined()) check_same_device(x, b, "linear");
    if (x.is_cuda()) return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
    return cpu::linear(x, w, b);
}

}  // namespace visionllm::kernels
