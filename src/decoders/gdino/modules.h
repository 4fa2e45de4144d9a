// The modules of VisionLLM v2's Grounding DINO transformer (modeling_ov_grounding_dino_mask_dn.py, "OV"), one class
// per reference module, named after it, weights bound by the reference's state-dict names. Internal to
// src/decoders/gdino: grounding_dino.h is the public face.
//
// Computation dtype: the weights' (f32 or bf16). Softmaxes, the multi-scale deformable sampling, sine embeddings,
// reference points and box math run in fp32 whatever it is.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "llm/llama.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

namespace visionllm::gdino {

// ---------------------------------------------------------------- building blocks

// nn.Linear
struct Linear {
    at::Tensor weight, bias;  // [out, in], [out] (bias may be undefined)
    at::Tensor forward(const at::Tensor & x) const;
    // relu(x W^T + b), the ReLU applied in place on the GEMM's output
    at::Tensor forward_relu(const at::Tensor & x) const;
    // act(x W^T + b) for the FFNs' activation_function (relu, or gelu: exact erf GELU)
    at::Tensor forward_act(const at::Tensor & x, bool gelu) const;
};
Linear bind_linear(const WeightView & w, const std::string & name, int64_t out, int64_t in, const llm::Loader & load,
                   bool bias = true);

// nn.LayerNorm over the last dim (OV builds every one outside Swin with the default eps 1e-5)
struct LayerNorm {
    at::Tensor weight, bias;
    double eps = 1e-5;
    at::Tensor forward(const at::Tensor & x) const;
};
LayerNorm bind_layer_norm(const WeightView & w, const std::string & name, int64_t n, const llm::Loader & load);

// GroundingDinoMLPPredictionHead and OV's MLP (patch2query): layers.{i} Linears, ReLU between
class MLPPredictionHead {
public:
    MLPPredictionHead() = default;
    MLPPredictionHead(const WeightView & w, int64_t in, int64_t hidden, int64_t out, int64_t num_layers,
                      const llm::Loader & load);
    at::Tensor forward(const at::Tensor & x) const;

private:
    std::vector<Linear> layers_;
};

// nn.Conv2d (+ nn.GroupNorm(32)) (+ ReLU): input_proj_vision's Sequential(conv, GN) and detectron2's Conv2d with
// norm / activation (lateral_convs, output_convs)
struct ConvNorm {
    at::Tensor weight, bias;            // conv; bias may be undefined
    at::Tensor norm_weight, norm_bias;  // GroupNorm(32, out); undefined: no norm
    int64_t stride = 1, padding = 0;
    bool relu = false;
    at::Tensor forward(const at::Tensor & x) const;  // NCHW
};

// sine embeddings (fp32)
// GroundingDinoSinePositionEmbedding(d/2, temperature, normalize=True) of a [B, H, W] bool mask -> [B, H*W, d]
at::Tensor sine_position_embedding(const at::Tensor & mask, int64_t d, double temperature);
// get_sine_pos_embed(pos[..., None] as float, num_pos_feats, temperature 10000, exchange_xy=False) of a
// [B, T] position tensor -> [B, T, num_pos_feats]
at::Tensor text_position_embedding(const at::Tensor & position_ids, int64_t num_pos_feats);
// GroundingDinoDecoder.get_proposal_pos_embed: [B, Q, 4] -> [B, Q, 4 * d/2] in (y, x, w, h) order
at::Tensor proposal_position_embedding(const at::Tensor & proposals, int64_t d);

// OV's inverse_sigmoid: log(clamp(x, eps) / clamp(1 - x, eps)) after clamp(x, 0, 1), eps 1e-5 (fp32)
at::Tensor inverse_sigmoid(const at::Tensor & x);

// ---------------------------------------------------------------- attention modules

// nn.MultiheadAttention(d, heads, batch_first=True) in eval mode: in_proj_weight/in_proj_bias, out_proj
class MultiheadAttention {
public:
    MultiheadAttention() = default;
    MultiheadAttention(const WeightView & w, int64_t d, int64_t heads, const llm::Loader & load);
    // self-attention with q = k = x + pos, v = x, no mask (the decoder's query self-attention)
    at::Tensor self_attention(const at::Tensor & x, const at::Tensor & pos) const;
    // q = x + pos, k = v = memory [B, T, d]; key_valid [B, T] bool (true = attend), the key_padding_mask negated
    at::Tensor cross_attention(const at::Tensor & query, const at::Tensor & memory, const at::Tensor & key_valid) const;
    // q = k = x + pos, v = x, with a boolean attn_mask: allowed [B * heads, T, T] (true = may attend; the mask
    // nn.MultiheadAttention reads batch-major, index b * heads + h)
    at::Tensor masked_self_attention(const at::Tensor & x, const at::Tensor & pos, const at::Tensor & allowed) const;
    int64_t heads() const { return heads_; }

private:
    int64_t d_ = 0, heads_ = 0;
    Linear qk_, q_, kv_, v_;  // row blocks of in_proj: q|k, q, k|v, v
    Linear out_proj_;
};

// GroundingDinoMultiscaleDeformableAttention (the core: kernels::ms_deform_attn)
struct Levels {
    at::Tensor spatial_shapes;     // [L, 2] int64 (H, W), on the model's device
    at::Tensor level_start_index;  // [L] int64
    std::vector<int64_t> heights, widths, starts;
    int64_t total = 0;  // sum H*W
};

class MultiscaleDeformableAttention {
public:
    MultiscaleDeformableAttention() = default;
    MultiscaleDeformableAttention(const WeightView & w, int64_t d, int64_t heads, int64_t levels, int64_t points,
                                  const llm::Loader & load);
    // value_proj(memory) with the padded positions (valid == false) zeroed, viewed [B, S, heads, d/heads]
    at::Tensor project_value(const at::Tensor & memory, const at::Tensor & valid) const;
    // query [B, Q, d] (position embedding already added); reference [B, Q, L, 2] (x, y) or [B, Q, L, 4] (cx, cy, w, h),
    // fp32; value from project_value -> output_proj(attention) [B, Q, d]
    at::Tensor forward(const at::Tensor & query, const at::Tensor & value, const at::Tensor & reference,
                       const Levels & lv) const;

private:
    int64_t d_ = 0, heads_ = 0, levels_ = 0, points_ = 0;
    Linear offsets_weights_;  // sampling_offsets and attention_weights stacked: one GEMM
    Linear value_proj_, output_proj_;
};

// GroundingDinoBiMultiHeadAttention: image-to-text and text-to-image attention. The projections are folded into
// the small text side (q.k = v_n (W_q^T k) and P (V_t W_o^T) per head; the text side reads softmax-weighted sums of
// the normalised vision features, sum_s p_s (W v_s + b) = W (sum_s p_s v_s) + b), so the large vision side runs
// no 1024-wide projection; the stabilisation (global max, clamp to +-50000, row max) is the reference's.
class BiMultiHeadAttention {
public:
    BiMultiHeadAttention() = default;
    BiMultiHeadAttention(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load);
    // vision [B, S, d], text [B, T, d] (both layer-normed); vision_valid [B, S], text_valid [B, T] bool
    // -> (delta_vision [B, S, d], delta_text [B, T, d])
    std::pair<at::Tensor, at::Tensor> forward(const at::Tensor & vision, const at::Tensor & text,
                                              const at::Tensor & vision_valid, const at::Tensor & text_valid) const;

private:
    int64_t d_ = 0, embed_ = 0, heads_ = 0, head_dim_ = 0;
    double scale_ = 1;
    // vision_proj, values_vision_proj and out_vision_proj as the folded products read them (see the constructor)
    Linear vision_proj_, values_vision_proj_, out_vision_proj_, out_text_proj_;
    Linear text_kv_;  // text_proj and values_text_proj stacked
};

// ---------------------------------------------------------------- encoder

class FusionLayer {
public:
    FusionLayer(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load);
    void forward(at::Tensor & vision, at::Tensor & text, const at::Tensor & vision_valid,
                 const at::Tensor & text_valid) const;

private:
    LayerNorm layer_norm_vision_, layer_norm_text_;
    BiMultiHeadAttention attn_;
    at::Tensor vision_param_, text_param_;
};

class TextEnhancerLayer {
public:
    TextEnhancerLayer(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load);
    // allowed: [B * heads, T, T] bool (true = may attend)
    at::Tensor forward(const at::Tensor & text, const at::Tensor & allowed, const at::Tensor & pos) const;
    int64_t heads() const { return self_attn_.heads(); }

private:
    MultiheadAttention self_attn_;
    Linear fc1_, fc2_;
    LayerNorm layer_norm_before_, layer_norm_after_;
    bool gelu_ = false;
};

// norm(x + fc2(act(fc1(x)))), in row chunks (the [rows, ffn] activations stay in cache)
at::Tensor ffn_residual_norm(const at::Tensor & x, const Linear & fc1, const Linear & fc2, const LayerNorm & norm,
                             bool gelu);

class DeformableLayer {
public:
    DeformableLayer(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load);
    at::Tensor forward(const at::Tensor & vision, const at::Tensor & pos, const at::Tensor & valid,
                       const at::Tensor & reference, const Levels & lv) const;

private:
    MultiscaleDeformableAttention self_attn_;
    LayerNorm self_attn_layer_norm_, final_layer_norm_;
    Linear fc1_, fc2_;
    bool gelu_ = false;
};

class EncoderLayer {
public:
    EncoderLayer(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load);
    void forward(at::Tensor & vision, at::Tensor & text, const at::Tensor & vision_pos, const at::Tensor & vision_valid,
                 const at::Tensor & reference, const Levels & lv, const at::Tensor & text_valid,
                 const at::Tensor & text_allowed, const at::Tensor & text_pos) const;
    int64_t text_heads() const { return text_enhancer_layer_.heads(); }

private:
    TextEnhancerLayer text_enhancer_layer_;
    FusionLayer fusion_layer_;
    DeformableLayer deformable_layer_;
};

class Encoder {
public:
    Encoder(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load);
    // GroundingDinoEncoder.get_reference_points: [B, S, L, 2] fp32
    static at::Tensor reference_points(const Levels & lv, const at::Tensor & valid_ratios);
    // vision [B, S, d] and text [B, T, d] are updated in place of the handles; text_allowed [B * heads, T, T]
    // (the text enhancer's attention mask, true = may attend), text_pos [B, T, d] (its sine position embedding)
    void forward(at::Tensor & vision, at::Tensor & text, const at::Tensor & vision_pos, const at::Tensor & vision_valid,
                 const Levels & lv, const at::Tensor & valid_ratios, const at::Tensor & text_valid,
                 const at::Tensor & text_allowed, const at::Tensor & text_pos) const;
    int64_t text_heads() const { return text_heads_; }

private:
    int64_t text_heads_;
    std::vector<EncoderLayer> layers_;
};

// ---------------------------------------------------------------- decoder

class DecoderLayer {
public:
    DecoderLayer(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load);
    at::Tensor forward(const at::Tensor & hidden, const at::Tensor & pos, const at::Tensor & reference,
                       const at::Tensor & vision, const at::Tensor & vision_valid, const Levels & lv,
                       const at::Tensor & text, const at::Tensor & text_valid) const;

private:
    MultiheadAttention self_attn_, encoder_attn_text_;
    MultiscaleDeformableAttention encoder_attn_;
    LayerNorm self_attn_layer_norm_, encoder_attn_text_layer_norm_, encoder_attn_layer_norm_, final_layer_norm_;
    Linear fc1_, fc2_;
    bool gelu_ = false;
};

struct DecoderOutput {
    std::vector<at::Tensor> hidden;      // decoder.layer_norm(h_l) per layer [B, Q, d]
    std::vector<at::Tensor> references;  // the refined reference after layer l [B, Q, 4] fp32
};

class Decoder {
public:
    // w: "model.decoder."; bbox_embed: one per layer (the same module when shared)
    Decoder(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load);
    DecoderOutput forward(const at::Tensor & target, const at::Tensor & reference, const at::Tensor & vision,
                          const at::Tensor & vision_valid, const Levels & lv, const at::Tensor & valid_ratios,
                          const at::Tensor & text, const at::Tensor & text_valid) const;
    const MLPPredictionHead & bbox_embed(int64_t layer) const { return bbox_embed_[size_t(layer)]; }
    const LayerNorm & layer_norm() const { return layer_norm_; }

private:
    int64_t d_;
    LayerNorm layer_norm_;
    std::vector<DecoderLayer> layers_;
    MLPPredictionHead reference_points_head_;
    std::vector<MLPPredictionHead> bbox_embed_;
};

}  // namespace visionllm::gdino
