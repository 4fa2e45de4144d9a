#include "decoders/gdino/layout.h"

#include <algorithm>
#include <string>

#include "decoders/gdino/swin.h"

namespace visionllm::gdino {

namespace {

using Tensors = std::vector<ExpectedTensor>;

void linear(Tensors & w, const std::string & p, int64_t out, int64_t in, bool optional = false) {
    w.push_back({p + ".weight", {out, in}, optional});
    w.push_back({p + ".bias", {out}, optional});
}

void norm(Tensors & w, const std::string & p, int64_t n) {
    w.push_back({p + ".weight", {n}});
    w.push_back({p + ".bias", {n}});
}

// GroundingDinoMLPPredictionHead / MLP: layers.{i} Linears
void mlp(Tensors & w, const std::string & p, int64_t in, int64_t hidden, int64_t out, int64_t num_layers,
         bool optional = false) {
    for (int64_t i = 0; i < num_layers; ++i) {
        const int64_t a = i == 0 ? in : hidden, b = i + 1 == num_layers ? out : hidden;
        linear(w, p + ".layers." + std::to_string(i), b, a, optional);
    }
}

// nn.MultiheadAttention(d, heads): packed q/k/v projection and out_proj
void mha(Tensors & w, const std::string & p, int64_t d) {
    w.push_back({p + ".in_proj_weight", {3 * d, d}});
    w.push_back({p + ".in_proj_bias", {3 * d}});
    linear(w, p + ".out_proj", d, d);
}

// GroundingDinoMultiscaleDeformableAttention
void msda(Tensors & w, const std::string & p, int64_t d, int64_t heads, int64_t levels, int64_t points) {
    linear(w, p + ".sampling_offsets", heads * levels * points * 2, d);
    linear(w, p + ".attention_weights", heads * levels * points, d);
    linear(w, p + ".value_proj", d, d);
    linear(w, p + ".output_proj", d, d);
}

}  // namespace

std::vector<int64_t> swin_channels(const SwinConfig & c) {
    std::vector<int64_t> ch;
    for (size_t i = 0; i < c.depths.size() && i < 32; ++i) ch.push_back(int64_t(uint64_t(c.embed_dim) << i));
    return ch;
}

std::vector<ExpectedTensor> gdino_expected_weights(const GroundingDinoConfig & c) {
    Tensors w;
    const int64_t d = c.d_model, levels = c.num_feature_levels, L = c.decoder_layers;
    const std::vector<int64_t> ch = swin_channels(c.backbone);
    const size_t n_stages = ch.size();

    // backbone: transformers SwinBackbone, out_features stage1..stage4
    for (ExpectedTensor t : swin_backbone_expected_weights(c.backbone)) {
        t.name = "model.backbone.conv_encoder.model." + t.name;
        w.push_back(std::move(t));
    }
    w.push_back({"model.level_embed", {levels, d}});
    // input projections: 1x1 conv + GN on the last three stages, then 3x3 stride-2 conv + GN for each extra level
    // (the first on the last stage's map, later ones on the previous level)
    const int64_t n_backbone = int64_t(std::min<size_t>(3, n_stages));
    for (int64_t i = 0; i < levels; ++i) {
        const std::string p = "model.input_proj_vision." + std::to_string(i);
        if (i < n_backbone) {
            const int64_t in = ch[n_stages - size_t(n_backbone) + size_t(i)];
            w.push_back({p + ".0.weight", {d, in, 1, 1}});
        } else {
            const int64_t in = i == n_backbone ? (n_stages ? ch.back() : d) : d;
            w.push_back({p + ".0.weight", {d, in, 3, 3}});
        }
        w.push_back({p + ".0.bias", {d}});
        norm(w, p + ".1", d);
    }
    // mask branch: detectron2 Conv2d (no bias with GN) on the stride-4 stage(s), then mask_features
    w.push_back({"model.mask_features.weight", {c.mask_dim, d, 1, 1}});
    w.push_back({"model.mask_features.bias", {c.mask_dim}});
    const int64_t num_fpn = std::max<int64_t>(levels - n_backbone, 1);
    for (int64_t i = 0; i < num_fpn; ++i) {
        const std::string lat = "model.lateral_convs." + std::to_string(i), out = "model.output_convs." + std::to_string(i);
        w.push_back({lat + ".weight", {d, size_t(i) < n_stages ? ch[size_t(i)] : d, 1, 1}});
        norm(w, lat + ".norm", d);
        w.push_back({out + ".weight", {d, d, 3, 3}});
        norm(w, out + ".norm", d);
    }
    if (c.embedding_init_target || !c.two_stage) w.push_back({"model.query_position_embeddings.weight", {c.num_queries, d}});
    mlp(w, "model.mask_embed", d, d, c.mask_dim, 3);

    // encoder
    const int64_t fusion = c.encoder_ffn_dim / 2;  // bi-attention width and text-enhancer FFN
    for (int64_t i = 0; i < c.encoder_layers; ++i) {
        const std::string p = "model.encoder.layers." + std::to_string(i) + ".";
        const std::string te = p + "text_enhancer_layer.";
        mha(w, te + "self_attn", d);
        linear(w, te + "fc1", fusion, d);
        linear(w, te + "fc2", d, fusion);
        norm(w, te + "layer_norm_before", d);
        norm(w, te + "layer_norm_after", d);
        const std::string fu = p + "fusion_layer.";
        w.push_back({fu + "vision_param", {d}});
        w.push_back({fu + "text_param", {d}});
        norm(w, fu + "layer_norm_vision", d);
        norm(w, fu + "layer_norm_text", d);
        for (const char * proj : {"vision_proj", "text_proj", "values_vision_proj", "values_text_proj"})
            linear(w, fu + "attn." + proj, fusion, d);
        linear(w, fu + "attn.out_vision_proj", d, fusion);
        linear(w, fu + "attn.out_text_proj", d, fusion);
        const std::string de = p + "deformable_layer.";
        msda(w, de + "self_attn", d, c.encoder_attention_heads, levels, c.encoder_n_points);
        norm(w, de + "self_attn_layer_norm", d);
        linear(w, de + "fc1", c.encoder_ffn_dim, d);
        linear(w, de + "fc2", d, c.encoder_ffn_dim);
        norm(w, de + "final_layer_norm", d);
    }

    // decoder
    norm(w, "model.decoder.layer_norm", d);
    for (int64_t i = 0; i < L; ++i) {
        const std::string p = "model.decoder.layers." + std::to_string(i) + ".";
        mha(w, p + "self_attn", d);
        norm(w, p + "self_attn_layer_norm", d);
        mha(w, p + "encoder_attn_text", d);
        norm(w, p + "encoder_attn_text_layer_norm", d);
        msda(w, p + "encoder_attn", d, c.decoder_attention_heads, levels, c.decoder_n_points);
        norm(w, p + "encoder_attn_layer_norm", d);
        linear(w, p + "fc1", c.decoder_ffn_dim, d);
        linear(w, p + "fc2", d, c.decoder_ffn_dim);
        norm(w, p + "final_layer_norm", d);
    }
    mlp(w, "model.decoder.reference_points_head", c.query_dim / 2 * d, d, d, 2);
    // the box head of the refinement: the first alias in state_dict() order
    for (int64_t i = 0; i < L; ++i)
        mlp(w, "model.decoder.bbox_embed." + std::to_string(i), d, d, 4, 3, c.decoder_bbox_embed_share && i > 0);

    // two-stage selection (encoder_output_bbox_embed is always its own head: the decoder's is not set yet when the
    // reference builds it, whatever two_stage_bbox_embed_share says)
    if (c.two_stage) {
        linear(w, "model.enc_output", d, d);
        norm(w, "model.enc_output_norm", d);
        mlp(w, "model.encoder_output_bbox_embed", d, d, 4, 3);
    } else {
        w.push_back({"model.reference_points.weight", {c.num_queries, 4}});
    }

    // heads (shared by all decoder layers) and the text-query projection
    for (int64_t i = 0; i < L; ++i) mlp(w, "mask_embed." + std::to_string(i), d, d, c.mask_dim, 3, i > 0);
    for (int64_t i = 0; i < L; ++i) mlp(w, "bbox_embed." + std::to_string(i), d, d, 4, 3, true);
    mlp(w, "patch2query", c.l_hidden_size, d, d, 3);
    return w;
}

}  // namespace visionllm::gdino
