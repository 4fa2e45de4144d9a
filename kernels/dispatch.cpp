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

namespace visionllm::kernels {

at::Tensor rope(const at::Tensor & x, const at::Tensor & cos, const at::Tensor & sin) {
    check_same_device(x, cos, "rope");
    check_same_device(x, sin, "rope");
    if (x.is_cuda()) {
#ifdef VISIONLLM_WITH_CUDA
        return cuda::rope(x, cos, sin);
#else
        fail("rope: CUDA tensor given, but this build has no CUDA kernels");
#endif
    }
    return cpu::rope(x, cos, sin);
}

at::Tensor silu_mul(const at::Tensor & gate, const at::Tensor & up) {
    check_same_device(gate, up, "silu_mul");
    if (gate.is_cuda()) {
#ifdef VISIONLLM_WITH_CUDA
        return cuda::silu_mul(gate, up);
#else
        fail("silu_mul: CUDA tensor given, but this build has no CUDA kernels");
#endif
    }
    return cpu::silu_mul(gate, up);
}

at::Tensor attention(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal, double scale) {
    check_same_device(q, k, "attention");
    check_same_device(q, v, "attention");
    if (q.is_cuda()) {
#ifdef VISIONLLM_WITH_CUDA
        return cuda::attention(q, k, v, causal, scale);
#else
        fail("attention: CUDA tensor given, but this build has no CUDA kernels");
#endif
    }
    return cpu::attention(q, k, v, causal, scale);
}

}  // namespace visionllm::kernels

namespace visionllm::kernels {

at::Tensor layer_norm(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, double eps) {
    check_layer_norm_args(x, w, b, eps);
    check_same_device(x, w, "layer_norm");
    if (b.defined()) check_same_device(x, b, "layer_norm");
    if (x.is_cuda()) {
#ifdef VISIONLLM_WITH_CUDA
        return cuda::layer_norm(x, w, b, eps);
#else
        fail("layer_norm: CUDA tensor given, but this build has no CUDA kernels");
#endif
    }
    return cpu::layer_norm(x, w, b, eps);
}

at::Tensor bias_act(const at::Tensor & x, const at::Tensor & bias, Activation act) {
    check_bias_act_args(x, bias, act, false);
    if (bias.defined()) check_same_device(x, bias, "bias_act");
    if (x.is_cuda()) {
#ifdef VISIONLLM_WITH_CUDA
        return cuda::bias_act(x, bias, act);
#else
        fail("bias_act: CUDA tensor given, but this build has no CUDA kernels");
#endif
    }
    return cpu::bias_act(x, bias, act);
}

void bias_act_(at::Tensor & x, const at::Tensor & bias, Activation act) {
    check_bias_act_args(x, bias, act, true);
    if (bias.defined()) check_same_device(x, bias, "bias_act_");
    if (x.is_cuda()) {
#ifdef VISIONLLM_WITH_CUDA
        return cuda::bias_act_(x, bias, act);
#else
        fail("bias_act_: CUDA tensor given, but this build has no CUDA kernels");
#endif
    }
    cpu::bias_act_(x, bias, act);
}

}  // namespace visionllm::kernels

namespace visionllm::kernels {

at::Tensor ms_deform_attn(const at::Tensor & value, const at::Tensor & spatial_shapes,
                          const at::Tensor & level_start_index, const at::Tensor & sampling_locations,
                          const at::Tensor & attention_weights) {
    check_ms_deform_attn_args(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
    // spatial_shapes and level_start_index may be on the CPU or any device: the backends read them on the host
    VLLM_CHECK(sampling_locations.device() == value.device(), "ms_deform_attn: sampling_locations is on ",
               sampling_locations.device().str(), " but value is on ", value.device().str());
    VLLM_CHECK(attention_weights.device() == value.device(), "ms_deform_attn: attention_weights is on ",
               attention_weights.device().str(), " but value is on ", value.device().str());
    if (value.is_cuda()) {
#ifdef VISIONLLM_WITH_CUDA
        return cuda::ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
#else
        fail("ms_deform_attn: CUDA tensor given, but this build has no CUDA kernels");
#endif
    }
    return cpu::ms_deform_attn(value, spatial_shapes, level_start_index, sampling_locations, attention_weights);
}

}  // namespace visionllm::kernels
