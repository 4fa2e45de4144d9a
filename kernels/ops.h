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

namespace visionllm::kernels {

// LLaMA rotary embedding (HF apply_rotary_pos_emb with rotate_half):
// out = x*cos + cat(-x[D/2:], x[:D/2])*sin, in fp32 with one rounding.
// x: [B, T, H, D], last dim contiguous, any strides on the first three (a slice
// of a fused qkv output is fine); cos/sin: [B, T, D] or [T, D], x's dtype,
// already gathered at the position ids. D even. Returns a contiguous [B, T, H, D].
at::Tensor rope(const at::Tensor & x, const at::Tensor & cos, const at::Tensor & sin);
// the argument checks both rope backends share
void check_rope_args(const at::Tensor & x, const at::Tensor & cos, const at::Tensor & sin);

// silu(gate) * up elementwise (the LLaMA MLP), fp32 math; same shape and dtype (f32/f16/bf16).
at::Tensor silu_mul(const at::Tensor & gate, const at::Tensor & up);
// the argument checks both silu_mul backends share
void check_silu_mul_args(const at::Tensor & gate, const at::Tensor & up);

// Scaled dot-product attention with grouped-query heads: q [B, H, Tq, D];
// k, v [B, Hkv, Tk, D] with H % Hkv == 0 (query head h reads kv head h / (H/Hkv)).
// Any strides on dims 0-2 (k/v are usually views of a [B, Hkv, Smax, D] cache);
// the last dim of k and v must be contiguous. The causal mask is bottom-right
// aligned: query i sees keys j <= Tk - Tq + i (so Tq <= Tk). Softmax and
// accumulation in fp32; returns a contiguous [B, H, Tq, D] in q's dtype. D <= 256.
at::Tensor attention(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal, double scale);
// the argument checks every attention backend shares; `op` prefixes the message
void check_attention_args(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal,
                          const char * op);

namespace cpu {
at::Tensor rope(const at::Tensor & x, const at::Tensor & cos, const at::Tensor & sin);
at::Tensor silu_mul(const at::Tensor & gate, const at::Tensor & up);
at::Tensor attention(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal, double scale);
}  // namespace cpu

#ifdef VISIONLLM_WITH_CUDA
namespace cuda {
at::Tensor rope(const at::Tensor & x, const at::Tensor & cos, const at::Tensor & sin);
at::Tensor silu_mul(const at::Tensor & gate, const at::Tensor & up);
// picks attention_decode for Tq <= 4, attention_prefill otherwise
at::Tensor attention(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal, double scale);
// flash-style: one block per (b, h, 32 queries), key tiles in shared memory, online softmax
at::Tensor attention_prefill(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal,
                             double scale);
// split-K over the keys for few queries: partial softmax per block, merged by a second pass
at::Tensor attention_decode(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal,
                            double scale);
}  // namespace cuda
#endif

}  // namespace visionllm::kernels

namespace visionllm::kernels {

// nn.LayerNorm over the last dimension: (x - mean) / sqrt(var + eps) * w + b with the biased variance,
// statistics in fp32 (corrected two-pass: accurate for rows with a large mean), one rounding to x's dtype.
// x: [..., n] f32/f16/bf16 (made contiguous); w, b: [n], x's dtype; b may be undefined (no bias). New tensor.
at::Tensor layer_norm(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, double eps);
// the argument checks both layer_norm backends share (eps finite and >= 0)
void check_layer_norm_args(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, double eps);

// Elementwise activations, fp32 math with one rounding to x's dtype.
enum class Activation {
    QuickGelu,  // x * sigmoid(1.702 x) (CLIP's quick_gelu)
    Gelu,       // exact erf GELU, nn.GELU(): x * Phi(x)
};
const char * activation_name(Activation act);  // "quick_gelu", "gelu"
// act(x + bias): `bias` ([n] over x's last dim, x's dtype) may be undefined; it fuses the Linear bias add when
// the matmul ran without it. x: any shape, f32/f16/bf16. Returns a new contiguous tensor.
at::Tensor bias_act(const at::Tensor & x, const at::Tensor & bias, Activation act);
// the same in place on a contiguous x (saves an allocation on the 577x4096 CLIP MLP activations)
void bias_act_(at::Tensor & x, const at::Tensor & bias, Activation act);
// the argument checks both bias_act backends share; in_place also requires a contiguous x
void check_bias_act_args(const at::Tensor & x, const at::Tensor & bias, Activation act, bool in_place);

namespace cpu {
at::Tensor layer_norm(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, double eps);
at::Tensor bias_act(const at::Tensor & x, const at::Tensor & bias, Activation act);
void bias_act_(at::Tensor & x, const at::Tensor & bias, Activation act);
}  // namespace cpu

#ifdef VISIONLLM_WITH_CUDA
namespace cuda {
// one block per row, fp32 block reductions
at::Tensor layer_norm(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, double eps);
// grid-stride elementwise, 16-byte vector loads when the sizes and pointers allow
at::Tensor bias_act(const at::Tensor & x, const at::Tensor & bias, Activation act);
void bias_act_(at::Tensor & x, const at::Tensor & bias, Activation act);
}  // namespace cuda
#endif

}  // namespace visionllm::kernels

namespace visionllm::kernels {

// Multi-scale deformable attention core (MultiScaleDeformableAttention's sampling + weighted sum,
// decoders_det_pose.md §2.2): for every n, q, head m, channel d
//   out[n,q,m*D+d] = sum_l sum_p w[n,q,m,l,p] * bilinear(value level l, head m, channel d,
//                                                      x = loc_x*W_l - 0.5, y = loc_y*H_l - 0.5)
// with zero padding outside the level (grid_sample bilinear, zeros, align_corners=False).
//   value              [N, S, M, D]      f32/f16/bf16; S = sum_l H_l*W_l
//   spatial_shapes     [L, 2] int64      (H_l, W_l), on any device
//   level_start_index  [L] int64         exclusive cumsum of H_l*W_l
//   sampling_locations [N, Lq, M, L, P, 2] f32 (or value's dtype), (x, y) normalised to [0,1]; any values
//                                         (outside, inf, nan samples contribute nothing)
//   attention_weights  [N, Lq, M, L, P] f32 (or value's dtype), already softmaxed
// Accumulation in fp32; returns a contiguous [N, Lq, M*D] in value's dtype.
at::Tensor ms_deform_attn(const at::Tensor & value, const at::Tensor & spatial_shapes,
                          const at::Tensor & level_start_index, const at::Tensor & sampling_locations,
                          const at::Tensor & attention_weights);
// the argument checks both backends share (shapes, dtypes, S = sum H*W, starts consistent)
void check_ms_deform_attn_args(const at::Tensor & value, const at::Tensor & spatial_shapes,
                               const at::Tensor & level_start_index, const at::Tensor & sampling_locations,
                               const at::Tensor & attention_weights);

namespace cpu {
at::Tensor ms_deform_attn(const at::Tensor & value, const at::Tensor & spatial_shapes,
                          const at::Tensor & level_start_index, const at::Tensor & sampling_locations,
                          const at::Tensor & attention_weights);
}  // namespace cpu

#ifdef VISIONLLM_WITH_CUDA
namespace cuda {
at::Tensor ms_deform_attn(const at::Tensor & value, const at::Tensor & spatial_shapes,
                          const at::Tensor & level_start_index, const at::Tensor & sampling_locations,
                          const at::Tensor & attention_weights);
}  // namespace cuda
#endif

}  // namespace visionllm::kernels
