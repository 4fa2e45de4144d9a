// Typed model configs. Parses the official nested VisionLLMv2 config.json and
// plain Hugging Face Llama and CLIP configs. Defaults are those of the
// reference classes; unknown fields are ignored; a missing field that fixes a
// tensor shape, or a value of the wrong type, is an error naming the field.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace visionllm {

// transformers LlamaConfig
struct LlamaConfig {
    int64_t vocab_size = 32000;
    int64_t hidden_size = 4096;
    int64_t intermediate_size = 11008;
    int64_t num_hidden_layers = 32;
    int64_t num_attention_heads = 32;
    int64_t num_key_value_heads = 32;  // defaults to num_attention_heads
    int64_t head_dim = 128;            // defaults to hidden_size / num_attention_heads
    int64_t max_position_embeddings = 2048;
    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    std::string rope_scaling_json = "null";  // the raw rope_scaling object, if any
    std::string hidden_act = "silu";
    bool tie_word_embeddings = false;
    bool attention_bias = false;
    bool mlp_bias = false;
    int64_t bos_token_id = 1;
    int64_t eos_token_id = 2;
    int64_t pad_token_id = -1;  // -1: none
    std::string torch_dtype;
};

// transformers CLIPVisionConfig
struct ClipVisionConfig {
    int64_t hidden_size = 768;
    int64_t intermediate_size = 3072;
    int64_t projection_dim = 512;
    int64_t num_hidden_layers = 12;
    int64_t num_attention_heads = 12;
    int64_t num_channels = 3;
    int64_t image_size = 224;
    int64_t patch_size = 32;
    std::string hidden_act = "quick_gelu";
    double layer_norm_eps = 1e-5;

    int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
};

// transformers SwinConfig (the Grounding DINO backbone)
struct SwinConfig {
    int64_t image_size = 224;
    int64_t patch_size = 4;
    int64_t num_channels = 3;
    int64_t embed_dim = 96;
    std::vector<int64_t> depths = {2, 2, 6, 2};
    std::vector<int64_t> num_heads = {3, 6, 12, 24};
    int64_t window_size = 7;
    double mlp_ratio = 4.0;
    bool qkv_bias = true;
    std::string hidden_act = "gelu";
    double layer_norm_eps = 1e-5;            // layernorm_before/after; the other Swin LayerNorms use 1e-5
    bool use_absolute_embeddings = false;    // only false is supported (true breaks the reference's shapes)
    // which of "stem", "stage1".."stageN" SwinBackbone returns; from out_indices (0 = stem) when only those are
    // given, the last stage when neither is (transformers' get_aligned_output_features_output_indices)
    std::vector<std::string> out_features;  // e.g. stage1..stage4
};

// VisionLLMv2's Grounding DINO (gdino_config: the GroundingDinoConfig of its modeling_ov_grounding_dino code + the
// fields train.py adds), with the reference defaults. parse_* validates what the model's shapes need: the backbone
// is a 4-stage Swin with out_features stage1..stage4 (stage1 feeds the mask branch only), d_model a multiple of 32
// (GroupNorm(32, d_model)) and of both head counts, two_stage true (the reference fails without it), query_dim 4.
struct GroundingDinoConfig {
    SwinConfig backbone;
    int64_t d_model = 256;
    int64_t num_queries = 900;
    int64_t encoder_layers = 6;
    int64_t decoder_layers = 6;
    int64_t encoder_ffn_dim = 2048;  // deformable-layer FFN; encoder_ffn_dim / 2 is the bi-attention width and the
                                     // text enhancer's FFN
    int64_t decoder_ffn_dim = 2048;
    int64_t encoder_attention_heads = 8;  // deformable self-attention; / 2 in the bi-attention and text enhancer
    int64_t decoder_attention_heads = 8;
    int64_t num_feature_levels = 4;  // 3 backbone levels (stage2..4) + extra 3x3 stride-2 levels
    int64_t encoder_n_points = 4;
    int64_t decoder_n_points = 4;
    std::string activation_function = "relu";  // encoder/decoder/text-enhancer FFNs: relu or gelu
    std::string position_embedding_type = "sine";
    bool two_stage = true;
    bool embedding_init_target = true;          // learned content queries (query_position_embeddings)
    int64_t query_dim = 4;                       // reference boxes (cx, cy, w, h)
    bool decoder_bbox_embed_share = true;        // one box head for every decoder layer
    bool two_stage_bbox_embed_share = false;     // no effect in the reference (its encoder head is always separate)
    int64_t max_text_len = 256;
    double positional_embedding_temperature = 20;
    double layer_norm_eps = 1e-5;  // ignored by the reference: its LayerNorms outside Swin all use 1e-5
    int64_t mask_dim = 256;
    std::string norm = "GN";  // the mask branch's conv norm (only GN)
    int64_t l_hidden_size = 4096;  // the LLM width patch2query reads
    int64_t num_embs = 4;          // [EMB] queries per routing group
    std::string raw_json;          // the parsed object, if any (to_config_json keeps its other keys)
};

// UniPose (unipose_config: a free-form attribute bag in the reference; the fields its model reads,
// with the defaults of UniPose_SwinT.py)
struct UniPoseConfig {
    int64_t hidden_dim = 256;
    int64_t num_queries = 900;
    int64_t enc_layers = 6;
    int64_t dec_layers = 6;
    int64_t nheads = 8;
    int64_t dim_feedforward = 2048;
    int64_t num_feature_levels = 4;
    int64_t enc_n_points = 4;
    int64_t dec_n_points = 4;
    int64_t num_body_points = 68;
    int64_t num_box_decoder_layers = 2;
    int64_t num_select = 50;
    std::string backbone = "swin_T_224_1k";
    std::vector<int64_t> return_interm_indices = {1, 2, 3};
    std::string raw_json;
};

// StableDiffusionWithLLMEmbConfig / InstructPix2PixWithLLMEmbConfig (sd_config, ip2p_config)
struct DiffusionConfig {
    std::string sd_model_id;    // default runwayml/stable-diffusion-v1-5 or timbrooks/instruct-pix2pix
    std::string trigger_token;  // "[GEN]" or "[EDIT]"
    int64_t llm_hidden_size = 4096;
    int64_t sd_hidden_size = 768;
    int64_t num_queries = 77;
    int64_t num_encoder_layers = 1;
    int64_t num_decoder_layers = 1;
    int64_t num_embed_tokens = 64;
    double cfg_drop_rate = 0.0;
    double cfg_scale = 7.5;
    std::string raw_json;
};

// VisionLLMv2Config (configuration_visionllmv2.py)
struct VisionLLMv2Config {
    LlamaConfig llm;
    ClipVisionConfig vision;
    std::string vl_bridge_type = "mlp2x_gelu";
    int64_t vis_output_layer = -2;
    bool use_pixelshuffle = false;
    int64_t num_embs = 4;
    int64_t num_embs_gen = 64;
    bool use_llm_lora = false;
    bool use_region_encoder = false;
    bool use_gdino = false;
    bool use_unipose = false;
    bool use_sd = false;
    bool use_ip2p = false;
    std::optional<GroundingDinoConfig> gdino;
    std::optional<UniPoseConfig> unipose;
    std::optional<DiffusionConfig> sd;
    std::optional<DiffusionConfig> ip2p;
};

enum class ModelKind { VisionLLMv2, Llama, ClipVision };

struct ModelConfig {
    ModelKind kind = ModelKind::VisionLLMv2;
    std::string path;  // the config.json it came from
    VisionLLMv2Config vllm;  // kind == VisionLLMv2
    LlamaConfig llama;       // kind == Llama
    ClipVisionConfig clip;   // kind == ClipVision
};

const char * model_kind_name(ModelKind k);

// `path`: a model directory (reads its config.json) or a config JSON file
ModelConfig load_model_config(const std::string & path);
// parses JSON text; `what` names its source in errors
ModelConfig parse_model_config(const std::string & json_text, const std::string & what);

// a gdino_config object on its own (e.g. tests/data/golden/gdino/config.json); `what` names it in errors
GroundingDinoConfig parse_gdino_config(const std::string & json_text, const std::string & what);

// config.json text in the official layout (what make-tiny writes)
std::string to_config_json(const VisionLLMv2Config & c);
// the gdino_config object as the reference's GroundingDinoConfig.to_dict() lays it out (backbone_config nested,
// model_type swin); keys of raw_json the struct does not model are kept
std::string to_config_json(const GroundingDinoConfig & c);
std::string to_config_json(const LlamaConfig & c);
std::string to_config_json(const ClipVisionConfig & c);

}  // namespace visionllm
