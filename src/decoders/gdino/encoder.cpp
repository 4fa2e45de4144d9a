// GroundingDinoEncoder and its layers (fusion, text enhancer, deformable), as OV runs them at inference.
#include <ATen/ATen.h>

#include <algorithm>

#include "decoders/gdino/modules.h"
#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::gdino {

at::Tensor ffn_residual_norm(const at::Tensor & x, const Linear & fc1, const Linear & fc2, const LayerNorm & norm,
                             bool gelu) {
    const int64_t d = x.size(-1), rows = x.numel() / d;
    at::Tensor x2 = x.reshape({rows, d});
    // a chunk's [chunk, ffn] activations stay within a few MB
    const int64_t chunk = std::max<int64_t>(256, (int64_t(4) << 20) / std::max<int64_t>(1, fc1.weight.size(0)));
    if (rows <= chunk) {
        at::Tensor y = fc2.forward(fc1.forward_act(x2, gelu));
        return norm.forward(y.add_(x2)).view(x.sizes());
    }
    at::Tensor out = at::empty_like(x2);
    for (int64_t r = 0; r < rows; r += chunk) {
        const int64_t n = std::min(chunk, rows - r);
        at::Tensor xc = x2.narrow(0, r, n);
        at::Tensor y = fc2.forward(fc1.forward_act(xc, gelu));
        out.narrow(0, r, n).copy_(norm.forward(y.add_(xc)));
    }
    return out.view(x.sizes());
}

// ---------------------------------------------------------------- layers

FusionLayer::FusionLayer(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load)
    : layer_norm_vision_(bind_layer_norm(w, "layer_norm_vision", c.d_model, load)),
      layer_norm_text_(bind_layer_norm(w, "layer_norm_text", c.d_model, load)),
      attn_(c, w.view("attn."), load),
      vision_param_(load(w, "vision_param", {c.d_model})),
      text_param_(load(w, "text_param", {c.d_model})) {}

void FusionLayer::forward(at::Tensor & vision, at::Tensor & text, const at::Tensor & vision_valid,
                          const at::Tensor & text_valid) const {
    // pre-norm; the residual is the normed features (the reference overwrites them), scaled by the layer-scale params
    at::Tensor v = layer_norm_vision_.forward(vision), t = layer_norm_text_.forward(text);
    auto [dv, dt] = attn_.forward(v, t, vision_valid, text_valid);
    vision = v.add_(dv.mul_(vision_param_));
    text = t.add_(dt.mul_(text_param_));
}

TextEnhancerLayer::TextEnhancerLayer(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load)
    : self_attn_(w.view("self_attn."), c.d_model, c.encoder_attention_heads / 2, load),
      fc1_(bind_linear(w, "fc1", c.encoder_ffn_dim / 2, c.d_model, load)),
      fc2_(bind_linear(w, "fc2", c.d_model, c.encoder_ffn_dim / 2, load)),
      layer_norm_before_(bind_layer_norm(w, "layer_norm_before", c.d_model, load)),
      layer_norm_after_(bind_layer_norm(w, "layer_norm_after", c.d_model, load)),
      gelu_(c.activation_function == "gelu") {}

at::Tensor TextEnhancerLayer::forward(const at::Tensor & text, const at::Tensor & allowed, const at::Tensor & pos) const {
    at::Tensor h = layer_norm_before_.forward(text + self_attn_.masked_self_attention(text, pos, allowed));
    return ffn_residual_norm(h, fc1_, fc2_, layer_norm_after_, gelu_);
}

DeformableLayer::DeformableLayer(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load)
    : self_attn_(w.view("self_attn."), c.d_model, c.encoder_attention_heads, c.num_feature_levels, c.encoder_n_points,
                 load),
      self_attn_layer_norm_(bind_layer_norm(w, "self_attn_layer_norm", c.d_model, load)),
      final_layer_norm_(bind_layer_norm(w, "final_layer_norm", c.d_model, load)),
      fc1_(bind_linear(w, "fc1", c.encoder_ffn_dim, c.d_model, load)),
      fc2_(bind_linear(w, "fc2", c.d_model, c.encoder_ffn_dim, load)),
      gelu_(c.activation_function == "gelu") {}

at::Tensor DeformableLayer::forward(const at::Tensor & vision, const at::Tensor & pos, const at::Tensor & valid,
                                    const at::Tensor & reference, const Levels & lv) const {
    // query = vision + pos; value = value_proj(vision) zeroed on the padding
    at::Tensor value = self_attn_.project_value(vision, valid);
    at::Tensor a = self_attn_.forward(vision + pos, value, reference, lv);
    value.reset();
    at::Tensor h = self_attn_layer_norm_.forward(a.add_(vision));
    return ffn_residual_norm(h, fc1_, fc2_, final_layer_norm_, gelu_);
}

EncoderLayer::EncoderLayer(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load)
    : text_enhancer_layer_(c, w.view("text_enhancer_layer."), load),
      fusion_layer_(c, w.view("fusion_layer."), load),
      deformable_layer_(c, w.view("deformable_layer."), load) {}

void EncoderLayer::forward(at::Tensor & vision, at::Tensor & text, const at::Tensor & vision_pos,
                           const at::Tensor & vision_valid, const at::Tensor & reference, const Levels & lv,
                           const at::Tensor & text_valid, const at::Tensor & text_allowed,
                           const at::Tensor & text_pos) const {
    fusion_layer_.forward(vision, text, vision_valid, text_valid);
    text = text_enhancer_layer_.forward(text, text_allowed, text_pos);
    vision = deformable_layer_.forward(vision, vision_pos, vision_valid, reference, lv);
}

// ---------------------------------------------------------------- encoder

Encoder::Encoder(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load)
    : text_heads_(c.encoder_attention_heads / 2) {
    for (int64_t i = 0; i < c.encoder_layers; ++i)
        layers_.emplace_back(c, w.view("layers." + std::to_string(i) + "."), load);
}

at::Tensor Encoder::reference_points(const Levels & lv, const at::Tensor & valid_ratios) {
    // pixel centres of every level over the valid part, then times every level's valid ratio: [B, S, L, 2] (x, y)
    const auto opt = at::TensorOptions().dtype(at::kFloat).device(valid_ratios.device());
    std::vector<at::Tensor> refs;
    for (size_t l = 0; l < lv.heights.size(); ++l) {
        const int64_t h = lv.heights[l], w = lv.widths[l];
        at::Tensor ys = at::linspace(0.5, double(h) - 0.5, h, opt), xs = at::linspace(0.5, double(w) - 0.5, w, opt);
        auto grid = at::meshgrid({ys, xs}, "ij");
        at::Tensor ry = grid[0].reshape({1, -1}) / (valid_ratios.select(1, int64_t(l)).select(1, 1).unsqueeze(1) * h);
        at::Tensor rx = grid[1].reshape({1, -1}) / (valid_ratios.select(1, int64_t(l)).select(1, 0).unsqueeze(1) * w);
        refs.push_back(at::stack({rx, ry}, -1));
    }
    at::Tensor r = at::cat(refs, 1);
    return r.unsqueeze(2) * valid_ratios.unsqueeze(1);
}

void Encoder::forward(at::Tensor & vision, at::Tensor & text, const at::Tensor & vision_pos,
                      const at::Tensor & vision_valid, const Levels & lv, const at::Tensor & valid_ratios,
                      const at::Tensor & text_valid, const at::Tensor & text_allowed, const at::Tensor & text_pos) const {
    const at::Tensor reference = reference_points(lv, valid_ratios);
    for (const EncoderLayer & layer : layers_)
        layer.forward(vision, text, vision_pos, vision_valid, reference, lv, text_valid, text_allowed, text_pos);
}

}  // namespace visionllm::gdino
