#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>

#include "io/json_file.h"
#include "visionllm/config.h"
#include "visionllm/error.h"

namespace visionllm {

namespace {

using json = nlohmann::json;

// typed access to one JSON object; `where` is "config.json: llm_config" and the like
class Obj {
public:
    Obj(const json & j, std::string where) : j_(j), where_(std::move(where)) {
        if (!j_.is_object()) fail(where_, ": expected a JSON object, got ", j_.type_name());
    }
    bool has(const char * k) const { return j_.contains(k) && !j_[k].is_null(); }
    const json & at(const char * k) const { return j_[k]; }
    std::string field(const char * k) const { return where_ + "." + k; }

    int64_t i64(const char * k, int64_t def) const { return has(k) ? as_int(k) : def; }
    int64_t req_i64(const char * k) const {
        if (!has(k)) fail(where_, ": missing required field '", k, "'");
        return as_int(k);
    }
    int64_t pos_i64(const char * k, int64_t def, bool required = false) const {
        int64_t v = required ? req_i64(k) : i64(k, def);
        if (v <= 0) fail(field(k), ": must be positive, got ", v);
        return v;
    }
    double f64(const char * k, double def) const {
        if (!has(k)) return def;
        if (!j_[k].is_number()) fail(field(k), ": expected a number, got ", j_[k].dump());
        return j_[k].get<double>();
    }
    bool boolean(const char * k, bool def) const {
        if (!has(k)) return def;
        if (!j_[k].is_boolean()) fail(field(k), ": expected true or false, got ", j_[k].dump());
        return j_[k].get<bool>();
    }
    std::string str(const char * k, const std::string & def) const {
        if (!has(k)) return def;
        if (!j_[k].is_string()) fail(field(k), ": expected a string, got ", j_[k].dump());
        return j_[k].get<std::string>();
    }
    std::vector<int64_t> ints(const char * k, const std::vector<int64_t> & def) const {
        if (!has(k)) return def;
        if (!j_[k].is_array()) fail(field(k), ": expected a list of integers, got ", j_[k].dump());
        std::vector<int64_t> out;
        for (const auto & x : j_[k]) {
            if (!x.is_number_integer()) fail(field(k), ": expected a list of integers, got ", j_[k].dump());
            out.push_back(x.get<int64_t>());
        }
        return out;
    }
    std::vector<std::string> strs(const char * k) const {
        std::vector<std::string> out;
        if (!has(k)) return out;
        if (!j_[k].is_array()) fail(field(k), ": expected a list of strings, got ", j_[k].dump());
        for (const auto & x : j_[k]) {
            if (!x.is_string()) fail(field(k), ": expected a list of strings, got ", j_[k].dump());
            out.push_back(x.get<std::string>());
        }
        return out;
    }
    Obj sub(const char * k) const {
        if (!has(k)) fail(where_, ": missing required field '", k, "'");
        return Obj(j_[k], field(k));
    }
    const std::string & where() const { return where_; }
    const json & raw() const { return j_; }

private:
    int64_t as_int(const char * k) const {
        const json & v = j_[k];
        if (v.is_number_integer()) return v.get<int64_t>();
        if (v.is_number_float()) {
            // 64.0 counts as 64; a value beyond int64 would make the conversion undefined (found by fuzz_config)
            const double d = v.get<double>();
            if (std::isfinite(d) && std::fabs(d) < 9.0e18 && d == std::floor(d)) return int64_t(d);
        }
        fail(field(k), ": expected an integer, got ", v.dump());
    }
    const json & j_;
    std::string where_;
};

LlamaConfig parse_llama(const Obj & o) {
    LlamaConfig c;
    const std::string mt = o.str("model_type", "llama");
    if (mt != "llama")
        fail(o.where(), ": model_type '", mt, "' is not supported (only llama-family language models, e.g. Vicuna)");
    c.vocab_size = o.pos_i64("vocab_size", c.vocab_size, true);
    c.hidden_size = o.pos_i64("hidden_size", c.hidden_size, true);
    c.intermediate_size = o.pos_i64("intermediate_size", c.intermediate_size, true);
    c.num_hidden_layers = o.pos_i64("num_hidden_layers", c.num_hidden_layers, true);
    c.num_attention_heads = o.pos_i64("num_attention_heads", c.num_attention_heads, true);
    c.num_key_value_heads = o.pos_i64("num_key_value_heads", c.num_attention_heads);
    if (c.num_attention_heads % c.num_key_value_heads != 0)
        fail(o.field("num_key_value_heads"), ": ", c.num_key_value_heads, " does not divide num_attention_heads ",
             c.num_attention_heads);
    if (!o.has("head_dim") && c.hidden_size % c.num_attention_heads != 0)
        fail(o.field("hidden_size"), ": ", c.hidden_size, " is not a multiple of num_attention_heads ", c.num_attention_heads);
    c.head_dim = o.pos_i64("head_dim", c.hidden_size / c.num_attention_heads);
    if (c.head_dim % 2 != 0) fail(o.field("head_dim"), ": must be even for rotary embeddings, got ", c.head_dim);
    c.max_position_embeddings = o.pos_i64("max_position_embeddings", c.max_position_embeddings);
    c.rms_norm_eps = o.f64("rms_norm_eps", c.rms_norm_eps);
    c.rope_theta = o.f64("rope_theta", c.rope_theta);
    if (o.has("rope_scaling")) {
        if (!o.at("rope_scaling").is_object()) fail(o.field("rope_scaling"), ": expected an object or null");
        c.rope_scaling_json = o.at("rope_scaling").dump();
    }
    c.hidden_act = o.str("hidden_act", c.hidden_act);
    c.tie_word_embeddings = o.boolean("tie_word_embeddings", c.tie_word_embeddings);
    c.attention_bias = o.boolean("attention_bias", c.attention_bias);
    c.mlp_bias = o.boolean("mlp_bias", c.mlp_bias);
    c.bos_token_id = o.i64("bos_token_id", c.bos_token_id);
    c.eos_token_id = o.i64("eos_token_id", c.eos_token_id);
    c.pad_token_id = o.i64("pad_token_id", -1);
    c.torch_dtype = o.str("torch_dtype", "");
    return c;
}

ClipVisionConfig parse_clip_vision(const Obj & o) {
    ClipVisionConfig c;
    const std::string mt = o.str("model_type", "clip_vision_model");
    if (mt != "clip_vision_model")
        fail(o.where(), ": model_type '", mt, "' is not supported as the image encoder (expected clip_vision_model)");
    c.hidden_size = o.pos_i64("hidden_size", c.hidden_size, true);
    c.intermediate_size = o.pos_i64("intermediate_size", c.intermediate_size, true);
    c.projection_dim = o.pos_i64("projection_dim", c.projection_dim);
    c.num_hidden_layers = o.pos_i64("num_hidden_layers", c.num_hidden_layers, true);
    c.num_attention_heads = o.pos_i64("num_attention_heads", c.num_attention_heads, true);
    c.num_channels = o.pos_i64("num_channels", c.num_channels);
    c.image_size = o.pos_i64("image_size", c.image_size, true);
    c.patch_size = o.pos_i64("patch_size", c.patch_size, true);
    c.hidden_act = o.str("hidden_act", c.hidden_act);
    c.layer_norm_eps = o.f64("layer_norm_eps", c.layer_norm_eps);
    if (c.hidden_size % c.num_attention_heads != 0)
        fail(o.field("hidden_size"), ": ", c.hidden_size, " is not a multiple of num_attention_heads ", c.num_attention_heads);
    if (c.image_size % c.patch_size != 0)
        fail(o.field("image_size"), ": ", c.image_size, " is not a multiple of patch_size ", c.patch_size);
    return c;
}

SwinConfig parse_swin(const Obj & o) {
    SwinConfig c;
    c.image_size = o.pos_i64("image_size", c.image_size);
    c.patch_size = o.pos_i64("patch_size", c.patch_size);
    c.num_channels = o.pos_i64("num_channels", c.num_channels);
    c.embed_dim = o.pos_i64("embed_dim", c.embed_dim);
    c.depths = o.ints("depths", c.depths);
    c.num_heads = o.ints("num_heads", c.num_heads);
    if (c.depths.size() != c.num_heads.size())
        fail(o.where(), ": depths and num_heads have different lengths (", c.depths.size(), " vs ", c.num_heads.size(), ")");
    if (c.depths.empty() || c.depths.size() > 16)
        fail(o.field("depths"), ": expected 1 to 16 stages, got ", c.depths.size());
    if (c.embed_dim > (int64_t(1) << 40)) fail(o.field("embed_dim"), ": ", c.embed_dim, " is too large");
    for (size_t i = 0; i < c.depths.size(); ++i) {
        if (c.depths[i] < 0 || c.depths[i] > 1024) fail(o.field("depths"), ": stage ", i + 1, " has depth ", c.depths[i]);
        if (c.num_heads[i] <= 0) fail(o.field("num_heads"), ": stage ", i + 1, " has ", c.num_heads[i], " heads");
        const int64_t dim = c.embed_dim << i;
        if (dim % c.num_heads[i] != 0)
            fail(o.field("num_heads"), ": stage ", i + 1, "'s ", c.num_heads[i], " heads do not divide its width ", dim,
                 " (embed_dim * 2^", i, ")");
    }
    c.window_size = o.pos_i64("window_size", c.window_size);
    if (c.window_size > 1024) fail(o.field("window_size"), ": ", c.window_size, " is too large");
    c.mlp_ratio = o.f64("mlp_ratio", c.mlp_ratio);
    c.qkv_bias = o.boolean("qkv_bias", c.qkv_bias);
    c.hidden_act = o.str("hidden_act", c.hidden_act);
    c.layer_norm_eps = o.f64("layer_norm_eps", c.layer_norm_eps);
    if (!(c.layer_norm_eps >= 0) || !std::isfinite(c.layer_norm_eps))
        fail(o.field("layer_norm_eps"), ": must be finite and >= 0, got ", c.layer_norm_eps);
    if (!(c.mlp_ratio > 0) || !std::isfinite(c.mlp_ratio) || c.mlp_ratio > 1e6)
        fail(o.field("mlp_ratio"), ": must be positive, got ", c.mlp_ratio);
    c.use_absolute_embeddings = o.boolean("use_absolute_embeddings", c.use_absolute_embeddings);
    if (c.use_absolute_embeddings)
        fail(o.field("use_absolute_embeddings"), ": true is not supported (the reference adds [1, P+1, C] position "
             "embeddings to [B, P, C] patch embeddings)");
    // stage names as SwinConfig lays them out: stem, stage1..stageN
    std::vector<std::string> stage_names = {"stem"};
    for (size_t i = 1; i <= c.depths.size(); ++i) stage_names.push_back("stage" + std::to_string(i));
    c.out_features = o.strs("out_features");
    if (c.out_features.empty() && o.has("out_indices")) {
        for (int64_t i : o.ints("out_indices", {})) {
            const int64_t n = int64_t(stage_names.size());
            if (i < -n || i >= n)
                fail(o.field("out_indices"), ": index ", i, " is out of range for ", n, " stages (stem included)");
            c.out_features.push_back(stage_names[size_t(i < 0 ? i + n : i)]);
        }
    }
    if (c.out_features.empty() && !o.has("out_features") && !o.has("out_indices"))
        c.out_features.push_back(stage_names.back());
    for (size_t k = 0; k < c.out_features.size(); ++k) {
        const std::string & f = c.out_features[k];
        const auto it = std::find(stage_names.begin(), stage_names.end(), f);
        if (it == stage_names.end())
            fail(o.field("out_features"), ": '", f, "' is not a stage name (stem, stage1..stage", c.depths.size(), ")");
        for (size_t j = 0; j < k; ++j)
            if (c.out_features[j] == f) fail(o.field("out_features"), ": '", f, "' is listed twice");
        if (k > 0 && std::find(stage_names.begin(), stage_names.end(), c.out_features[k - 1]) > it)
            fail(o.field("out_features"), ": must follow the stage order, got '", c.out_features[k - 1], "' before '",
                 f, "'");
    }
    return c;
}

GroundingDinoConfig parse_gdino(const Obj & o) {
    GroundingDinoConfig c;
    const Obj bb = o.sub("backbone_config");
    const std::string bb_type = bb.str("model_type", "swin");
    if (bb_type != "swin")
        fail(bb.field("model_type"), ": '", bb_type, "' is not supported (VisionLLMv2's Grounding DINO uses a Swin backbone)");
    c.backbone = parse_swin(bb);
    c.d_model = o.pos_i64("d_model", c.d_model);
    c.num_queries = o.pos_i64("num_queries", c.num_queries);
    c.encoder_layers = o.pos_i64("encoder_layers", c.encoder_layers);
    c.decoder_layers = o.pos_i64("decoder_layers", c.decoder_layers);
    c.encoder_ffn_dim = o.pos_i64("encoder_ffn_dim", c.encoder_ffn_dim);
    c.decoder_ffn_dim = o.pos_i64("decoder_ffn_dim", c.decoder_ffn_dim);
    c.encoder_attention_heads = o.pos_i64("encoder_attention_heads", c.encoder_attention_heads);
    c.decoder_attention_heads = o.pos_i64("decoder_attention_heads", c.decoder_attention_heads);
    c.num_feature_levels = o.pos_i64("num_feature_levels", c.num_feature_levels);
    c.encoder_n_points = o.pos_i64("encoder_n_points", c.encoder_n_points);
    c.decoder_n_points = o.pos_i64("decoder_n_points", c.decoder_n_points);
    c.activation_function = o.str("activation_function", c.activation_function);
    c.position_embedding_type = o.str("position_embedding_type", c.position_embedding_type);
    c.two_stage = o.boolean("two_stage", c.two_stage);
    c.embedding_init_target = o.boolean("embedding_init_target", c.embedding_init_target);
    c.query_dim = o.pos_i64("query_dim", c.query_dim);
    c.decoder_bbox_embed_share = o.boolean("decoder_bbox_embed_share", c.decoder_bbox_embed_share);
    c.two_stage_bbox_embed_share = o.boolean("two_stage_bbox_embed_share", c.two_stage_bbox_embed_share);
    c.max_text_len = o.pos_i64("max_text_len", c.max_text_len);
    c.positional_embedding_temperature = o.f64("positional_embedding_temperature", c.positional_embedding_temperature);
    c.layer_norm_eps = o.f64("layer_norm_eps", c.layer_norm_eps);
    c.mask_dim = o.pos_i64("mask_dim", c.mask_dim);
    c.norm = o.str("norm", c.norm);
    c.l_hidden_size = o.pos_i64("l_hidden_size", c.l_hidden_size);
    c.num_embs = o.pos_i64("num_embs", c.num_embs);

    // what the reference's shapes and forward need
    const std::vector<std::string> stages = {"stage1", "stage2", "stage3", "stage4"};
    if (c.backbone.depths.size() != 4)
        fail(bb.field("depths"), ": the Swin backbone must have 4 stages, got ", c.backbone.depths.size());
    if (c.backbone.out_features != stages)
        fail(bb.field("out_features"), ": must be [stage1, stage2, stage3, stage4] (stage1 feeds the mask branch, "
             "stage2..4 the transformer), got ", bb.has("out_features") ? bb.at("out_features").dump() : "none");
    if (c.d_model % 32 != 0)
        fail(o.field("d_model"), ": ", c.d_model, " is not a multiple of 32 (the input projections and the mask "
             "branch use GroupNorm(32, d_model))");
    if (c.d_model % c.encoder_attention_heads != 0)
        fail(o.field("encoder_attention_heads"), ": ", c.encoder_attention_heads, " does not divide d_model ", c.d_model);
    if (c.d_model % c.decoder_attention_heads != 0)
        fail(o.field("decoder_attention_heads"), ": ", c.decoder_attention_heads, " does not divide d_model ", c.d_model);
    if (c.encoder_attention_heads < 2)
        fail(o.field("encoder_attention_heads"), ": must be at least 2 (the text enhancer and the image-text fusion "
             "use encoder_attention_heads / 2), got ", c.encoder_attention_heads);
    if (c.encoder_ffn_dim < 2 || (c.encoder_ffn_dim / 2) % (c.encoder_attention_heads / 2) != 0)
        fail(o.field("encoder_ffn_dim"), ": ", c.encoder_ffn_dim, " / 2 (the image-text fusion width) is not a "
             "multiple of encoder_attention_heads / 2 = ", c.encoder_attention_heads / 2);
    if (c.num_feature_levels < 3)
        fail(o.field("num_feature_levels"), ": must be at least 3 (the backbone levels stage2..4), got ",
             c.num_feature_levels);
    if (!c.two_stage) fail(o.field("two_stage"), ": must be true (the reference's forward needs the two-stage selection)");
    if (c.query_dim != 4) fail(o.field("query_dim"), ": must be 4 (two-stage reference boxes), got ", c.query_dim);
    if (c.two_stage_bbox_embed_share && !c.decoder_bbox_embed_share)
        fail(o.field("two_stage_bbox_embed_share"), ": true needs decoder_bbox_embed_share true");
    if (c.activation_function != "relu" && c.activation_function != "gelu")
        fail(o.field("activation_function"), ": '", c.activation_function, "' is not supported (relu or gelu)");
    if (c.position_embedding_type != "sine")
        fail(o.field("position_embedding_type"), ": '", c.position_embedding_type, "' is not supported (sine)");
    if (c.norm != "GN") fail(o.field("norm"), ": '", c.norm, "' is not supported (GN)");
    if (!(c.positional_embedding_temperature > 0))
        fail(o.field("positional_embedding_temperature"), ": must be positive, got ", c.positional_embedding_temperature);
    if (!(c.layer_norm_eps > 0)) fail(o.field("layer_norm_eps"), ": must be positive, got ", c.layer_norm_eps);
    c.raw_json = o.raw().dump();
    return c;
}

UniPoseConfig parse_unipose(const Obj & o) {
    UniPoseConfig c;
    c.hidden_dim = o.pos_i64("hidden_dim", c.hidden_dim);
    c.num_queries = o.pos_i64("num_queries", c.num_queries);
    c.enc_layers = o.pos_i64("enc_layers", c.enc_layers);
    c.dec_layers = o.pos_i64("dec_layers", c.dec_layers);
    c.nheads = o.pos_i64("nheads", c.nheads);
    c.dim_feedforward = o.pos_i64("dim_feedforward", c.dim_feedforward);
    c.num_feature_levels = o.pos_i64("num_feature_levels", c.num_feature_levels);
    c.enc_n_points = o.pos_i64("enc_n_points", c.enc_n_points);
    c.dec_n_points = o.pos_i64("dec_n_points", c.dec_n_points);
    c.num_body_points = o.pos_i64("num_body_points", c.num_body_points);
    c.num_box_decoder_layers = o.pos_i64("num_box_decoder_layers", c.num_box_decoder_layers);
    c.num_select = o.pos_i64("num_select", c.num_select);
    c.backbone = o.str("backbone", c.backbone);
    c.return_interm_indices = o.ints("return_interm_indices", c.return_interm_indices);
    c.raw_json = o.raw().dump();
    return c;
}

DiffusionConfig parse_diffusion(const Obj & o, const std::string & default_model_id, const std::string & trigger) {
    DiffusionConfig c;
    c.sd_model_id = o.str("sd_model_id", default_model_id);
    c.trigger_token = o.str("trigger_token", trigger);
    c.llm_hidden_size = o.pos_i64("llm_hidden_size", c.llm_hidden_size);
    c.num_encoder_layers = o.pos_i64("num_encoder_layers", c.num_encoder_layers);
    c.num_decoder_layers = o.pos_i64("num_decoder_layers", c.num_decoder_layers);
    c.num_queries = o.pos_i64("num_queries", c.num_queries);
    c.sd_hidden_size = o.pos_i64("sd_hidden_size", c.sd_hidden_size);
    c.num_embed_tokens = o.pos_i64("num_embed_tokens", c.num_embed_tokens);
    c.cfg_drop_rate = o.f64("cfg_drop_rate", c.cfg_drop_rate);
    c.cfg_scale = o.f64("cfg_scale", c.cfg_scale);
    c.raw_json = o.raw().dump();
    return c;
}

bool has_arch(const Obj & o, const std::string & name) {
    if (!o.has("architectures") || !o.at("architectures").is_array()) return false;
    for (const auto & a : o.at("architectures")) {
        if (a.is_string() && a.get<std::string>() == name) return true;
    }
    return false;
}

VisionLLMv2Config parse_vllm(const Obj & o) {
    VisionLLMv2Config c;
    const Obj llm = o.sub("llm_config"), vis = o.sub("vis_encoder_config");
    if (has_arch(llm, "InternLM2ForCausalLM") || has_arch(vis, "InternVisionModel"))
        fail(o.where(), ": this is the InternLM2/InternViT (26B) variant of VisionLLMv2, which is not supported; "
                        "visionllm runs the released 7B model (Vicuna + CLIP)");
    c.llm = parse_llama(llm);
    c.vision = parse_clip_vision(vis);
    c.vl_bridge_type = o.str("vl_bridge_type", c.vl_bridge_type);
    if (c.vl_bridge_type != "mlp2x_gelu")
        fail(o.field("vl_bridge_type"), ": '", c.vl_bridge_type, "' is not supported (the released 7B model uses mlp2x_gelu)");
    c.vis_output_layer = o.i64("vis_output_layer", c.vis_output_layer);
    if (c.vis_output_layer >= 0 || -c.vis_output_layer > c.vision.num_hidden_layers + 1)
        fail(o.field("vis_output_layer"), ": ", c.vis_output_layer, " is out of range for ", c.vision.num_hidden_layers,
             " encoder layers");
    c.use_pixelshuffle = o.boolean("use_pixelshuffle", c.use_pixelshuffle);
    c.num_embs = o.pos_i64("num_embs", c.num_embs);
    c.num_embs_gen = o.pos_i64("num_embs_gen", c.num_embs_gen);
    c.use_llm_lora = o.boolean("use_llm_lora", c.use_llm_lora);
    c.use_region_encoder = o.boolean("use_region_encoder", c.use_region_encoder);
    c.use_gdino = o.boolean("use_gdino", c.use_gdino);
    c.use_unipose = o.boolean("use_unipose", c.use_unipose);
    c.use_sd = o.boolean("use_sd", c.use_sd);
    c.use_ip2p = o.boolean("use_ip2p", c.use_ip2p);
    if (o.has("gdino_config")) c.gdino = parse_gdino(o.sub("gdino_config"));
    if (o.has("unipose_config")) c.unipose = parse_unipose(o.sub("unipose_config"));
    // the tool configs are written as null when their use_* flag is false
    if (o.has("sd_config")) c.sd = parse_diffusion(o.sub("sd_config"), "runwayml/stable-diffusion-v1-5", "[GEN]");
    if (o.has("ip2p_config")) c.ip2p = parse_diffusion(o.sub("ip2p_config"), "timbrooks/instruct-pix2pix", "[EDIT]");
    if (c.use_gdino && !c.gdino) fail(o.where(), ": use_gdino is true but gdino_config is missing");
    if (c.use_unipose && !c.unipose) fail(o.where(), ": use_unipose is true but unipose_config is missing");
    if (c.use_sd && !c.sd) fail(o.where(), ": use_sd is true but sd_config is missing");
    if (c.use_ip2p && !c.ip2p) fail(o.where(), ": use_ip2p is true but ip2p_config is missing");
    return c;
}


}  // namespace

const char * model_kind_name(ModelKind k) {
    switch (k) {
        case ModelKind::VisionLLMv2: return "VisionLLMv2";
        case ModelKind::Llama: return "Llama";
        case ModelKind::ClipVision: return "CLIPVision";
    }
    return "?";
}

ModelConfig parse_model_config(const std::string & text, const std::string & what) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception & e) {
        fail(what, ": invalid JSON: ", e.what());
    }
    Obj o(j, what);
    ModelConfig m;
    m.path = what;
    const std::string mt = o.str("model_type", "");
    if (mt == "visionllmv2" || has_arch(o, "VisionLLMv2Model") || o.has("llm_config")) {
        m.kind = ModelKind::VisionLLMv2;
        m.vllm = parse_vllm(o);
    } else if (mt == "llama" || has_arch(o, "LlamaForCausalLM")) {
        m.kind = ModelKind::Llama;
        m.llama = parse_llama(o);
    } else if (mt == "clip_vision_model") {
        m.kind = ModelKind::ClipVision;
        m.clip = parse_clip_vision(o);
    } else if (mt == "clip") {
        m.kind = ModelKind::ClipVision;
        m.clip = parse_clip_vision(o.sub("vision_config"));
    } else {
        fail(what, ": unrecognised model (model_type '", mt,
             "'); expected a VisionLLMv2 config, a Llama config or a CLIP config");
    }
    return m;
}

ModelConfig load_model_config(const std::string & path) {
    std::string file = path;
    if (!io::file_exists(path)) {
        file = path + "/config.json";
        if (!io::file_exists(file)) fail(path, ": no config.json found");
    }
    json j = io::read_json_file(file);
    return parse_model_config(j.dump(), file);
}

std::string to_config_json(const LlamaConfig & c) {
    json j = {
        {"architectures", {"LlamaForCausalLM"}},
        {"model_type", "llama"},
        {"vocab_size", c.vocab_size},
        {"hidden_size", c.hidden_size},
        {"intermediate_size", c.intermediate_size},
        {"num_hidden_layers", c.num_hidden_layers},
        {"num_attention_heads", c.num_attention_heads},
        {"num_key_value_heads", c.num_key_value_heads},
        {"max_position_embeddings", c.max_position_embeddings},
        {"rms_norm_eps", c.rms_norm_eps},
        {"rope_theta", c.rope_theta},
        {"rope_scaling", json::parse(c.rope_scaling_json)},
        {"hidden_act", c.hidden_act},
        {"tie_word_embeddings", c.tie_word_embeddings},
        {"attention_bias", c.attention_bias},
        {"bos_token_id", c.bos_token_id},
        {"eos_token_id", c.eos_token_id},
        {"pad_token_id", c.pad_token_id < 0 ? json(nullptr) : json(c.pad_token_id)},
        {"torch_dtype", c.torch_dtype.empty() ? json(nullptr) : json(c.torch_dtype)},
    };
    if (c.head_dim != c.hidden_size / c.num_attention_heads) j["head_dim"] = c.head_dim;
    return j.dump(2);
}

std::string to_config_json(const ClipVisionConfig & c) {
    json v = {
        {"architectures", {"CLIPVisionModel"}},
        {"model_type", "clip_vision_model"},
        {"hidden_size", c.hidden_size},
        {"intermediate_size", c.intermediate_size},
        {"projection_dim", c.projection_dim},
        {"num_hidden_layers", c.num_hidden_layers},
        {"num_attention_heads", c.num_attention_heads},
        {"num_channels", c.num_channels},
        {"image_size", c.image_size},
        {"patch_size", c.patch_size},
        {"hidden_act", c.hidden_act},
        {"layer_norm_eps", c.layer_norm_eps},
    };
    return v.dump(2);
}

GroundingDinoConfig parse_gdino_config(const std::string & text, const std::string & what) {
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception & e) {
        fail(what, ": invalid JSON: ", e.what());
    }
    return parse_gdino(Obj(j, what));
}

namespace {

// the Swin backbone_config as transformers' SwinConfig.to_dict() writes it, over `base` (the parsed object, if any)
json swin_backbone_json(const SwinConfig & s, json base) {
    if (!base.is_object()) base = json::object();
    const int64_t n = int64_t(s.depths.size());
    std::vector<std::string> stage_names = {"stem"};
    for (int64_t i = 1; i <= n; ++i) stage_names.push_back("stage" + std::to_string(i));
    std::vector<int64_t> out_indices;
    for (const auto & f : s.out_features) {
        const auto it = std::find(stage_names.begin(), stage_names.end(), f);
        if (it != stage_names.end()) out_indices.push_back(int64_t(it - stage_names.begin()));
    }
    // training-only fields the reference configuration has, with the released model's values
    const json defaults = {{"drop_path_rate", 0.1}, {"hidden_dropout_prob", 0.0}, {"attention_probs_dropout_prob", 0.0},
                           {"encoder_stride", 32}, {"initializer_range", 0.02}};
    for (const auto & [k, v] : defaults.items())
        if (!base.contains(k)) base[k] = v;
    base["model_type"] = "swin";
    base["image_size"] = s.image_size;
    base["patch_size"] = s.patch_size;
    base["num_channels"] = s.num_channels;
    base["embed_dim"] = s.embed_dim;
    base["depths"] = s.depths;
    base["num_heads"] = s.num_heads;
    base["num_layers"] = n;
    base["hidden_size"] = n > 0 && n < 32 ? int64_t(uint64_t(s.embed_dim) << (n - 1)) : s.embed_dim;  // last stage
    base["window_size"] = s.window_size;
    base["mlp_ratio"] = s.mlp_ratio;
    base["qkv_bias"] = s.qkv_bias;
    base["hidden_act"] = s.hidden_act;
    base["layer_norm_eps"] = s.layer_norm_eps;
    base["use_absolute_embeddings"] = s.use_absolute_embeddings;
    base["stage_names"] = stage_names;
    base["out_features"] = s.out_features;
    base["out_indices"] = out_indices;
    return base;
}

}  // namespace

std::string to_config_json(const GroundingDinoConfig & c) {
    json j = c.raw_json.empty() ? json::object() : json::parse(c.raw_json);
    // fields the reference's configuration has and the forward does not read, with the released model's values
    const json defaults = {
        {"model_type", "grounding-dino"}, {"is_encoder_decoder", true}, {"auxiliary_loss", true},
        {"dropout", 0.1}, {"attention_dropout", 0.0}, {"activation_dropout", 0.0}, {"text_enhancer_dropout", 0.0},
        {"fusion_dropout", 0.0}, {"fusion_droppath", 0.1}, {"disable_custom_kernels", false}, {"init_std", 0.02},
        {"text_backbone_config", {{"model_type", "grounding-dino-text-prenet"}, {"vocab_size", 30522}}},
    };
    for (const auto & [k, v] : defaults.items())
        if (!j.contains(k)) j[k] = v;
    j["backbone_config"] = swin_backbone_json(c.backbone, j.value("backbone_config", json::object()));
    j["d_model"] = c.d_model;
    j["num_queries"] = c.num_queries;
    j["encoder_layers"] = c.encoder_layers;
    j["decoder_layers"] = c.decoder_layers;
    j["encoder_ffn_dim"] = c.encoder_ffn_dim;
    j["decoder_ffn_dim"] = c.decoder_ffn_dim;
    j["encoder_attention_heads"] = c.encoder_attention_heads;
    j["decoder_attention_heads"] = c.decoder_attention_heads;
    j["num_feature_levels"] = c.num_feature_levels;
    j["encoder_n_points"] = c.encoder_n_points;
    j["decoder_n_points"] = c.decoder_n_points;
    j["activation_function"] = c.activation_function;
    j["position_embedding_type"] = c.position_embedding_type;
    j["two_stage"] = c.two_stage;
    j["embedding_init_target"] = c.embedding_init_target;
    j["query_dim"] = c.query_dim;
    j["decoder_bbox_embed_share"] = c.decoder_bbox_embed_share;
    j["two_stage_bbox_embed_share"] = c.two_stage_bbox_embed_share;
    j["max_text_len"] = c.max_text_len;
    j["positional_embedding_temperature"] = c.positional_embedding_temperature;
    j["layer_norm_eps"] = c.layer_norm_eps;
    j["mask_dim"] = c.mask_dim;
    j["norm"] = c.norm;
    j["l_hidden_size"] = c.l_hidden_size;
    j["num_embs"] = c.num_embs;
    return j.dump(2);
}

std::string to_config_json(const VisionLLMv2Config & c) {
    const json v = json::parse(to_config_json(c.vision));
    json j = {
        {"architectures", {"VisionLLMv2Model"}},
        {"model_type", "visionllmv2"},
        {"pretrained_vl_bridge", nullptr},
        {"llm_config", json::parse(to_config_json(c.llm))},
        {"vis_encoder_config", v},
        {"vl_bridge_type", c.vl_bridge_type},
        {"vis_output_layer", c.vis_output_layer},
        {"use_pixelshuffle", c.use_pixelshuffle},
        {"num_embs", c.num_embs},
        {"num_embs_gen", c.num_embs_gen},
        {"use_llm_lora", c.use_llm_lora},
        {"use_region_encoder", c.use_region_encoder},
        {"use_gdino", c.use_gdino},
        {"use_unipose", c.use_unipose},
        {"use_sd", c.use_sd},
        {"use_ip2p", c.use_ip2p},
        {"torch_dtype", c.llm.torch_dtype.empty() ? json(nullptr) : json(c.llm.torch_dtype)},
    };
    // as VisionLLMv2Config.to_dict: the tool configs are always present, null when unused
    auto raw = [](const auto & opt) { return !opt ? json(nullptr) : opt->raw_json.empty() ? json::object() : json::parse(opt->raw_json); };
    j["gdino_config"] = c.gdino ? json::parse(to_config_json(*c.gdino)) : json(nullptr);
    j["unipose_config"] = raw(c.unipose);
    j["sd_config"] = raw(c.sd);
    j["ip2p_config"] = raw(c.ip2p);
    return j.dump(2);
}

}  // namespace visionllm
