// GroundingDinoDecoder and GroundingDinoDecoderLayer (OV: nn.MultiheadAttention self-attention and text
// cross-attention with the text key-padding mask), iterative box refinement.
#include <ATen/ATen.h>

#include "decoders/gdino/modules.h"
#include "visionllm/error.h"

namespace visionllm::gdino {

DecoderLayer::DecoderLayer(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load)
    : self_attn_(w.view("self_attn."), c.d_model, c.decoder_attention_heads, load),
      encoder_attn_text_(w.view("encoder_attn_text."), c.d_model, c.decoder_attention_heads, load),
      encoder_attn_(w.view("encoder_attn."), c.d_model, c.decoder_attention_heads, c.num_feature_levels,
                    c.decoder_n_points, load),
      self_attn_layer_norm_(bind_layer_norm(w, "self_attn_layer_norm", c.d_model, load)),
      encoder_attn_text_layer_norm_(bind_layer_norm(w, "encoder_attn_text_layer_norm", c.d_model, load)),
      encoder_attn_layer_norm_(bind_layer_norm(w, "encoder_attn_layer_norm", c.d_model, load)),
      final_layer_norm_(bind_layer_norm(w, "final_layer_norm", c.d_model, load)),
      fc1_(bind_linear(w, "fc1", c.decoder_ffn_dim, c.d_model, load)),
      fc2_(bind_linear(w, "fc2", c.d_model, c.decoder_ffn_dim, load)),
      gelu_(c.activation_function == "gelu") {}

at::Tensor DecoderLayer::forward(const at::Tensor & hidden, const at::Tensor & pos, const at::Tensor & reference,
                                 const at::Tensor & vision, const at::Tensor & vision_valid, const Levels & lv,
                                 const at::Tensor & text, const at::Tensor & text_valid) const {
    at::Tensor h = self_attn_layer_norm_.forward(hidden + self_attn_.self_attention(hidden, pos));
    h = encoder_attn_text_layer_norm_.forward(h + encoder_attn_text_.cross_attention(h + pos, text, text_valid));
    at::Tensor value = encoder_attn_.project_value(vision, vision_valid);
    h = encoder_attn_layer_norm_.forward(h + encoder_attn_.forward(h + pos, value, reference, lv));
    value.reset();
    return ffn_residual_norm(h, fc1_, fc2_, final_layer_norm_, gelu_);
}

Decoder::Decoder(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load)
    : d_(c.d_model), layer_norm_(bind_layer_norm(w, "layer_norm", c.d_model, load)) {
    VLLM_CHECK(c.query_dim == 4, "gdino_config.query_dim must be 4 (reference boxes), got ", c.query_dim);
    for (int64_t i = 0; i < c.decoder_layers; ++i)
        layers_.emplace_back(c, w.view("layers." + std::to_string(i) + "."), load);
    reference_points_head_ = MLPPredictionHead(w.view("reference_points_head."), c.query_dim / 2 * c.d_model, c.d_model,
                                               c.d_model, 2, load);
    // the refinement's box head: OV's ModuleList of one module (shared) or of clones; the first alias is read
    for (int64_t i = 0; i < c.decoder_layers; ++i) {
        if (c.decoder_bbox_embed_share && i > 0) {
            bbox_embed_.push_back(bbox_embed_.front());
            continue;
        }
        bbox_embed_.emplace_back(w.view("bbox_embed." + std::to_string(i) + "."), c.d_model, c.d_model, 4, 3, load);
    }
}

DecoderOutput Decoder::forward(const at::Tensor & target, const at::Tensor & reference, const at::Tensor & vision,
                               const at::Tensor & vision_valid, const Levels & lv, const at::Tensor & valid_ratios,
                               const at::Tensor & text, const at::Tensor & text_valid) const {
    DecoderOutput out;
    const at::Tensor vr4 = at::cat({valid_ratios, valid_ratios}, -1).unsqueeze(1);  // [B, 1, L, 4]
    at::Tensor h = target, ref = reference;
    for (size_t l = 0; l < layers_.size(); ++l) {
        at::Tensor ref_in = ref.unsqueeze(2) * vr4;  // [B, Q, L, 4]
        at::Tensor pos = proposal_position_embedding(ref_in.select(2, 0), d_).to(h.scalar_type());
        pos = reference_points_head_.forward(pos);
        h = layers_[l].forward(h, pos, ref_in, vision, vision_valid, lv, text, text_valid);
        // refinement on the un-normed hidden state, box math in fp32
        at::Tensor tmp = bbox_embed_[l].forward(h).to(at::kFloat);
        ref = tmp.add_(inverse_sigmoid(ref)).sigmoid_();
        out.hidden.push_back(layer_norm_.forward(h));
        out.references.push_back(ref);
    }
    return out;
}

}  // namespace visionllm::gdino
