// Typed configs: the official nested config.json, plain HF Llama and CLIP
// configs, reference defaults, and clear errors for what is missing or wrong.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "engine/layout.h"
#include "visionllm/config.h"

using namespace visionllm;
using namespace visionllm::test;
using json = nlohmann::json;

namespace {

json reference_config() { return json::parse(read_file(source_dir() + "/configs/visionllmv2-7b.config.json")); }

std::string error_for(const json & j) {
    return error_of([&] { parse_model_config(j.dump(), "config.json"); });
}

uint64_t count_params(const std::vector<ExpectedTensor> & ts) {
    uint64_t n = 0;
    for (const auto & t : ts) {
        if (t.optional) continue;
        uint64_t k = 1;
        for (int64_t d : t.shape) k *= uint64_t(d);
        n += k;
    }
    return n;
}

}  // namespace

TEST(Config, ReleasedSevenBConfig) {
    ModelConfig m = load_model_config(source_dir() + "/configs/visionllmv2-7b.config.json");
    ASSERT_EQ(m.kind, ModelKind::VisionLLMv2);
    const auto & c = m.vllm;
    EXPECT_EQ(c.llm.vocab_size, 32026);
    EXPECT_EQ(c.llm.hidden_size, 4096);
    EXPECT_EQ(c.llm.intermediate_size, 11008);
    EXPECT_EQ(c.llm.num_hidden_layers, 32);
    EXPECT_EQ(c.llm.num_key_value_heads, 32);
    EXPECT_EQ(c.llm.head_dim, 128);
    EXPECT_EQ(c.llm.max_position_embeddings, 4096);
    EXPECT_DOUBLE_EQ(c.llm.rms_norm_eps, 1e-5);
    EXPECT_EQ(c.llm.pad_token_id, 0);
    EXPECT_EQ(c.llm.torch_dtype, "bfloat16");
    EXPECT_EQ(c.vision.hidden_size, 1024);
    EXPECT_EQ(c.vision.image_size, 336);
    EXPECT_EQ(c.vision.patch_size, 14);
    EXPECT_EQ(c.vision.num_patches(), 576);
    EXPECT_EQ(c.vision.hidden_act, "quick_gelu");
    EXPECT_EQ(c.vis_output_layer, -2);
    EXPECT_EQ(c.num_embs, 4);
    EXPECT_EQ(c.num_embs_gen, 64);
    EXPECT_TRUE(c.use_region_encoder && c.use_gdino && c.use_unipose && c.use_sd && c.use_ip2p);
    ASSERT_TRUE(c.gdino && c.unipose && c.sd && c.ip2p);
    EXPECT_EQ(c.gdino->backbone.depths, (std::vector<int64_t>{2, 2, 6, 2}));
    EXPECT_EQ(c.gdino->backbone.embed_dim, 96);
    EXPECT_EQ(c.gdino->backbone.out_features.size(), 4u);
    EXPECT_EQ(c.gdino->num_queries, 900);
    EXPECT_EQ(c.gdino->mask_dim, 256);
    EXPECT_EQ(c.gdino->l_hidden_size, 4096);
    EXPECT_EQ(c.unipose->num_body_points, 68);
    EXPECT_EQ(c.unipose->return_interm_indices, (std::vector<int64_t>{1, 2, 3}));
    EXPECT_EQ(c.sd->trigger_token, "[GEN]");
    EXPECT_EQ(c.ip2p->trigger_token, "[EDIT]");
    EXPECT_DOUBLE_EQ(c.sd->cfg_drop_rate, 0.1);
    EXPECT_DOUBLE_EQ(c.ip2p->cfg_drop_rate, 0.05);
    EXPECT_EQ(c.sd->num_queries, 77);
}

TEST(Config, SevenBLayoutHasTheReleasedParameterCounts) {
    ModelConfig m = load_model_config(source_dir() + "/configs/visionllmv2-7b.config.json");
    uint64_t llm = 0, vis = 0;
    for (const auto & comp : engine::model_layout(m)) {
        if (comp.name == "llm") llm = count_params(comp.tensors);
        if (comp.name == "vis_encoder") vis = count_params(comp.tensors);
    }
    EXPECT_EQ(llm, 6738628608ull);  // Vicuna-7B with 26 added tokens
    EXPECT_EQ(vis, 303507456ull);   // CLIP ViT-L/14-336 vision tower
}

TEST(Config, ReferenceDefaultsApply) {
    json j = {{"model_type", "visionllmv2"},
              {"llm_config",
               {{"model_type", "llama"},
                {"vocab_size", 100},
                {"hidden_size", 64},
                {"intermediate_size", 128},
                {"num_hidden_layers", 2},
                {"num_attention_heads", 4}}},
              {"vis_encoder_config",
               {{"hidden_size", 32},
                {"intermediate_size", 64},
                {"num_hidden_layers", 3},
                {"num_attention_heads", 4},
                {"image_size", 56},
                {"patch_size", 14}}}};
    ModelConfig m = parse_model_config(j.dump(), "config.json");
    const auto & c = m.vllm;
    EXPECT_EQ(c.llm.num_key_value_heads, 4);  // = num_attention_heads
    EXPECT_EQ(c.llm.head_dim, 16);
    EXPECT_EQ(c.llm.max_position_embeddings, 2048);
    EXPECT_DOUBLE_EQ(c.llm.rms_norm_eps, 1e-6);
    EXPECT_DOUBLE_EQ(c.llm.rope_theta, 10000.0);
    EXPECT_EQ(c.llm.hidden_act, "silu");
    EXPECT_EQ(c.llm.bos_token_id, 1);
    EXPECT_EQ(c.llm.eos_token_id, 2);
    EXPECT_EQ(c.llm.pad_token_id, -1);
    EXPECT_FALSE(c.llm.tie_word_embeddings);
    EXPECT_EQ(c.vision.hidden_act, "quick_gelu");
    EXPECT_DOUBLE_EQ(c.vision.layer_norm_eps, 1e-5);
    EXPECT_EQ(c.vision.num_channels, 3);
    EXPECT_EQ(c.vl_bridge_type, "mlp2x_gelu");
    EXPECT_EQ(c.vis_output_layer, -2);
    EXPECT_EQ(c.num_embs, 4);
    EXPECT_EQ(c.num_embs_gen, 64);
    EXPECT_FALSE(c.use_region_encoder || c.use_gdino || c.use_unipose || c.use_sd || c.use_ip2p);
    EXPECT_FALSE(c.gdino || c.unipose || c.sd || c.ip2p);
}

TEST(Config, UnknownFieldsAreIgnored) {
    json j = reference_config();
    j["something_new"] = {{"a", 1}};
    j["llm_config"]["future_flag"] = true;
    EXPECT_EQ(error_for(j), "");
}

TEST(Config, MissingRequiredFieldsAreNamed) {
    json j = reference_config();
    j.erase("llm_config");
    std::string e = error_for(j);
    EXPECT_NE(e.find("config.json"), std::string::npos) << e;
    EXPECT_NE(e.find("'llm_config'"), std::string::npos) << e;

    j = reference_config();
    j["llm_config"].erase("hidden_size");
    e = error_for(j);
    EXPECT_NE(e.find("llm_config"), std::string::npos) << e;
    EXPECT_NE(e.find("'hidden_size'"), std::string::npos) << e;

    j = reference_config();
    j["vis_encoder_config"].erase("patch_size");
    e = error_for(j);
    EXPECT_NE(e.find("vis_encoder_config"), std::string::npos) << e;
    EXPECT_NE(e.find("'patch_size'"), std::string::npos) << e;

    j = reference_config();
    j["gdino_config"] = nullptr;
    e = error_for(j);
    EXPECT_NE(e.find("use_gdino is true but gdino_config is missing"), std::string::npos) << e;
}

TEST(Config, WrongTypesAndValuesAreNamed) {
    json j = reference_config();
    j["llm_config"]["hidden_size"] = "big";
    std::string e = error_for(j);
    EXPECT_NE(e.find("llm_config.hidden_size: expected an integer, got \"big\""), std::string::npos) << e;
    // beyond int64: an error, not an undefined conversion (a fuzz_config find)
    j["llm_config"]["hidden_size"] = 1.71111e23;
    e = error_for(j);
    EXPECT_NE(e.find("llm_config.hidden_size: expected an integer"), std::string::npos) << e;

    j = reference_config();
    j["use_gdino"] = "yes";
    e = error_for(j);
    EXPECT_NE(e.find("use_gdino: expected true or false"), std::string::npos) << e;

    j = reference_config();
    j["llm_config"]["num_key_value_heads"] = 5;
    e = error_for(j);
    EXPECT_NE(e.find("num_key_value_heads"), std::string::npos) << e;

    j = reference_config();
    j["vis_encoder_config"]["num_hidden_layers"] = 0;
    e = error_for(j);
    EXPECT_NE(e.find("vis_encoder_config.num_hidden_layers: must be positive"), std::string::npos) << e;

    j = reference_config();
    j["vis_output_layer"] = -40;
    e = error_for(j);
    EXPECT_NE(e.find("vis_output_layer"), std::string::npos) << e;

    j = reference_config();
    j["gdino_config"]["backbone_config"]["depths"] = {2, 2};
    e = error_for(j);
    EXPECT_NE(e.find("depths and num_heads"), std::string::npos) << e;
}

TEST(Config, TwentySixBVariantIsRefusedClearly) {
    json j = reference_config();
    j["llm_config"]["architectures"] = {"InternLM2ForCausalLM"};
    std::string e = error_for(j);
    EXPECT_NE(e.find("26B"), std::string::npos) << e;
}

TEST(Config, InvalidJsonNamesTheFile) {
    TempDir d("cfg");
    write_file(d.file("config.json"), "{\"llm_config\": {");
    std::string e = error_of([&] { load_model_config(d.path()); });
    EXPECT_NE(e.find(d.file("config.json")), std::string::npos) << e;
    EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
    e = error_of([&] { load_model_config(d.file("missing")); });
    EXPECT_NE(e.find("no config.json"), std::string::npos) << e;
}

TEST(Config, PlainLlamaAndClipConfigs) {
    json llama = reference_config()["llm_config"];
    ModelConfig m = parse_model_config(llama.dump(), "llama/config.json");
    EXPECT_EQ(m.kind, ModelKind::Llama);
    EXPECT_EQ(m.llama.num_hidden_layers, 32);

    json gqa = llama;
    gqa["num_key_value_heads"] = 8;
    EXPECT_EQ(parse_model_config(gqa.dump(), "x").llama.num_key_value_heads, 8);

    json vision = reference_config()["vis_encoder_config"];
    m = parse_model_config(vision.dump(), "clip/config.json");
    EXPECT_EQ(m.kind, ModelKind::ClipVision);
    EXPECT_EQ(m.clip.image_size, 336);

    json full = {{"model_type", "clip"}, {"text_config", {{"model_type", "clip_text_model"}}}, {"vision_config", vision}};
    m = parse_model_config(full.dump(), "clip/config.json");
    EXPECT_EQ(m.kind, ModelKind::ClipVision);
    EXPECT_EQ(m.clip.hidden_size, 1024);

    std::string e = error_of([] { parse_model_config(R"({"model_type": "bert"})", "x/config.json"); });
    EXPECT_NE(e.find("bert"), std::string::npos) << e;
}

TEST(Config, WrittenConfigReadsBackTheSame) {
    ModelConfig a = load_model_config(source_dir() + "/configs/visionllmv2-7b.config.json");
    ModelConfig b = parse_model_config(to_config_json(a.vllm), "roundtrip");
    EXPECT_EQ(b.vllm.llm.vocab_size, a.vllm.llm.vocab_size);
    EXPECT_EQ(b.vllm.llm.head_dim, a.vllm.llm.head_dim);
    EXPECT_DOUBLE_EQ(b.vllm.llm.rms_norm_eps, a.vllm.llm.rms_norm_eps);
    EXPECT_EQ(b.vllm.vision.image_size, a.vllm.vision.image_size);
    EXPECT_EQ(b.vllm.use_ip2p, a.vllm.use_ip2p);
    EXPECT_EQ(b.vllm.gdino->backbone.depths, a.vllm.gdino->backbone.depths);
    EXPECT_EQ(b.vllm.sd->trigger_token, "[GEN]");
}

// --- Grounding DINO (gdino_config) -------------------------------------------------------------------------------

namespace {

json golden_gdino_config() { return json::parse(read_file(golden_dir("gdino") + "/config.json")); }

std::string gdino_error(const json & j) {
    return error_of([&] { parse_gdino_config(j.dump(), "gdino_config"); });
}

void expect_same_gdino(const GroundingDinoConfig & a, const GroundingDinoConfig & b) {
    EXPECT_EQ(a.backbone.embed_dim, b.backbone.embed_dim);
    EXPECT_EQ(a.backbone.depths, b.backbone.depths);
    EXPECT_EQ(a.backbone.num_heads, b.backbone.num_heads);
    EXPECT_EQ(a.backbone.window_size, b.backbone.window_size);
    EXPECT_DOUBLE_EQ(a.backbone.mlp_ratio, b.backbone.mlp_ratio);
    EXPECT_EQ(a.backbone.out_features, b.backbone.out_features);
    EXPECT_EQ(a.d_model, b.d_model);
    EXPECT_EQ(a.num_queries, b.num_queries);
    EXPECT_EQ(a.encoder_layers, b.encoder_layers);
    EXPECT_EQ(a.decoder_layers, b.decoder_layers);
    EXPECT_EQ(a.encoder_ffn_dim, b.encoder_ffn_dim);
    EXPECT_EQ(a.decoder_ffn_dim, b.decoder_ffn_dim);
    EXPECT_EQ(a.encoder_attention_heads, b.encoder_attention_heads);
    EXPECT_EQ(a.decoder_attention_heads, b.decoder_attention_heads);
    EXPECT_EQ(a.num_feature_levels, b.num_feature_levels);
    EXPECT_EQ(a.encoder_n_points, b.encoder_n_points);
    EXPECT_EQ(a.decoder_n_points, b.decoder_n_points);
    EXPECT_EQ(a.activation_function, b.activation_function);
    EXPECT_EQ(a.embedding_init_target, b.embedding_init_target);
    EXPECT_EQ(a.decoder_bbox_embed_share, b.decoder_bbox_embed_share);
    EXPECT_EQ(a.two_stage_bbox_embed_share, b.two_stage_bbox_embed_share);
    EXPECT_EQ(a.query_dim, b.query_dim);
    EXPECT_EQ(a.max_text_len, b.max_text_len);
    EXPECT_DOUBLE_EQ(a.positional_embedding_temperature, b.positional_embedding_temperature);
    EXPECT_EQ(a.mask_dim, b.mask_dim);
    EXPECT_EQ(a.norm, b.norm);
    EXPECT_EQ(a.l_hidden_size, b.l_hidden_size);
    EXPECT_EQ(a.num_embs, b.num_embs);
}

}  // namespace

TEST(GdinoConfig, ReleasedValues) {
    ModelConfig m = load_model_config(source_dir() + "/configs/visionllmv2-7b.config.json");
    const GroundingDinoConfig & g = *m.vllm.gdino;
    EXPECT_EQ(g.d_model, 256);
    EXPECT_EQ(g.encoder_ffn_dim, 2048);
    EXPECT_EQ(g.activation_function, "relu");
    EXPECT_EQ(g.position_embedding_type, "sine");
    EXPECT_TRUE(g.two_stage && g.embedding_init_target && g.decoder_bbox_embed_share);
    EXPECT_FALSE(g.two_stage_bbox_embed_share);
    EXPECT_EQ(g.query_dim, 4);
    EXPECT_EQ(g.max_text_len, 256);
    EXPECT_DOUBLE_EQ(g.positional_embedding_temperature, 20);
    EXPECT_EQ(g.backbone.out_features, (std::vector<std::string>{"stage1", "stage2", "stage3", "stage4"}));
}

TEST(GdinoConfig, GoldenConfigRoundTrips) {
    // the golden's gdino_config (tools/golden/gdino.py), then the released one, through to_config_json and back
    const GroundingDinoConfig a = parse_gdino_config(golden_gdino_config().dump(), "golden");
    EXPECT_EQ(a.d_model, 64);
    EXPECT_EQ(a.backbone.window_size, 3);
    EXPECT_EQ(a.encoder_n_points, 2);
    EXPECT_EQ(a.decoder_n_points, 3);
    EXPECT_EQ(a.mask_dim, 32);
    const GroundingDinoConfig b = parse_gdino_config(to_config_json(a), "roundtrip");
    expect_same_gdino(a, b);

    ModelConfig m = load_model_config(source_dir() + "/configs/visionllmv2-7b.config.json");
    const GroundingDinoConfig c = parse_gdino_config(to_config_json(*m.vllm.gdino), "roundtrip 7b");
    expect_same_gdino(*m.vllm.gdino, c);
    // keys the struct does not model survive; modelled ones follow the struct
    GroundingDinoConfig d = *m.vllm.gdino;
    d.num_queries = 300;
    const json j = json::parse(to_config_json(d));
    EXPECT_EQ(j["num_queries"], 300);
    EXPECT_EQ(j["_name_or_path"], "checkpoints/grounding-dino-tiny");
    EXPECT_EQ(j["giou_cost"], 2.0);
    EXPECT_EQ(j["backbone_config"]["drop_path_rate"], 0.1);
    // and the whole VisionLLMv2 config carries it
    VisionLLMv2Config v = m.vllm;
    v.gdino = d;
    EXPECT_EQ(parse_model_config(to_config_json(v), "v").vllm.gdino->num_queries, 300);
}

TEST(GdinoConfig, WrittenFromScratchHasTheOfficialLayout) {
    // what make-tiny writes: no parsed JSON behind it
    GroundingDinoConfig c;
    c.backbone.out_features = {"stage1", "stage2", "stage3", "stage4"};
    c.d_model = 64;
    c.num_queries = 30;
    const json j = json::parse(to_config_json(c));
    EXPECT_EQ(j["model_type"], "grounding-dino");
    EXPECT_EQ(j["backbone_config"]["model_type"], "swin");
    EXPECT_EQ(j["backbone_config"]["out_features"], json({"stage1", "stage2", "stage3", "stage4"}));
    EXPECT_EQ(j["backbone_config"]["out_indices"], json({1, 2, 3, 4}));
    EXPECT_EQ(j["backbone_config"]["stage_names"], json({"stem", "stage1", "stage2", "stage3", "stage4"}));
    EXPECT_EQ(j["backbone_config"]["hidden_size"], 768);
    EXPECT_EQ(j["text_backbone_config"]["model_type"], "grounding-dino-text-prenet");
    for (const char * k : {"d_model", "num_queries", "encoder_layers", "decoder_layers", "encoder_ffn_dim",
                           "decoder_ffn_dim", "encoder_attention_heads", "decoder_attention_heads", "num_feature_levels",
                           "encoder_n_points", "decoder_n_points", "activation_function", "two_stage",
                           "embedding_init_target", "query_dim", "decoder_bbox_embed_share",
                           "two_stage_bbox_embed_share", "max_text_len", "positional_embedding_temperature",
                           "layer_norm_eps", "mask_dim", "norm", "l_hidden_size", "num_embs", "position_embedding_type"})
        EXPECT_TRUE(j.contains(k)) << k;
    expect_same_gdino(c, parse_gdino_config(j.dump(), "scratch"));
}

TEST(GdinoConfig, ReferenceDefaultsApply) {
    const json j = {{"backbone_config", golden_gdino_config()["backbone_config"]}};
    const GroundingDinoConfig c = parse_gdino_config(j.dump(), "gdino_config");
    EXPECT_EQ(c.d_model, 256);
    EXPECT_EQ(c.num_queries, 900);
    EXPECT_EQ(c.encoder_layers, 6);
    EXPECT_EQ(c.encoder_attention_heads, 8);
    EXPECT_EQ(c.num_feature_levels, 4);
    EXPECT_EQ(c.activation_function, "relu");
    EXPECT_TRUE(c.two_stage && c.embedding_init_target && c.decoder_bbox_embed_share);
    EXPECT_FALSE(c.two_stage_bbox_embed_share);
    EXPECT_EQ(c.max_text_len, 256);
    EXPECT_EQ(c.mask_dim, 256);
    EXPECT_EQ(c.norm, "GN");
    EXPECT_EQ(c.l_hidden_size, 4096);
    EXPECT_EQ(c.num_embs, 4);
}

TEST(GdinoConfig, BadValuesAreNamed) {
    struct Case {
        const char * key;
        json value;
        const char * message;
    };
    const std::vector<Case> cases = {
        {"d_model", 48, "gdino_config.d_model: 48 is not a multiple of 32"},
        {"d_model", 0, "gdino_config.d_model: must be positive"},
        {"encoder_attention_heads", 3, "gdino_config.encoder_attention_heads: 3 does not divide d_model 64"},
        {"decoder_attention_heads", 5, "gdino_config.decoder_attention_heads: 5 does not divide d_model 64"},
        {"encoder_attention_heads", 1, "gdino_config.encoder_attention_heads: must be at least 2"},
        {"encoder_ffn_dim", 6, "gdino_config.encoder_ffn_dim: 6 / 2 (the image-text fusion width) is not a multiple"},
        {"num_feature_levels", 2, "gdino_config.num_feature_levels: must be at least 3"},
        {"max_text_len", 0, "gdino_config.max_text_len: must be positive"},
        {"num_queries", -1, "gdino_config.num_queries: must be positive"},
        {"two_stage", false, "gdino_config.two_stage: must be true"},
        {"query_dim", 2, "gdino_config.query_dim: must be 4"},
        {"norm", "BN", "gdino_config.norm: 'BN' is not supported"},
        {"activation_function", "tanh", "gdino_config.activation_function: 'tanh' is not supported"},
        {"position_embedding_type", "learned", "gdino_config.position_embedding_type: 'learned' is not supported"},
        {"positional_embedding_temperature", 0, "gdino_config.positional_embedding_temperature: must be positive"},
        {"d_model", "wide", "gdino_config.d_model: expected an integer"},
        {"two_stage", "yes", "gdino_config.two_stage: expected true or false"},
    };
    for (const auto & c : cases) {
        json j = golden_gdino_config();
        j[c.key] = c.value;
        const std::string e = gdino_error(j);
        EXPECT_NE(e.find(c.message), std::string::npos) << c.key << " = " << c.value.dump() << ": " << e;
    }
    json j = golden_gdino_config();
    j["two_stage_bbox_embed_share"] = true;
    j["decoder_bbox_embed_share"] = false;
    EXPECT_NE(gdino_error(j).find("two_stage_bbox_embed_share: true needs decoder_bbox_embed_share"), std::string::npos);

    j = golden_gdino_config();
    j["backbone_config"]["out_features"] = {"stage2", "stage3", "stage4"};
    std::string e = gdino_error(j);
    EXPECT_NE(e.find("gdino_config.backbone_config.out_features: must be [stage1, stage2, stage3, stage4]"),
              std::string::npos) << e;
    j["backbone_config"].erase("out_features");
    j["backbone_config"].erase("out_indices");
    e = gdino_error(j);
    EXPECT_NE(e.find("backbone_config.out_features"), std::string::npos) << e;

    j = golden_gdino_config();
    j["backbone_config"]["depths"] = {2, 2, 2};
    j["backbone_config"]["num_heads"] = {1, 1, 2};
    j["backbone_config"]["out_features"] = {"stage1", "stage2", "stage3"};
    e = gdino_error(j);
    EXPECT_NE(e.find("gdino_config.backbone_config.depths: the Swin backbone must have 4 stages"), std::string::npos) << e;

    j = golden_gdino_config();
    j["backbone_config"]["model_type"] = "resnet";
    e = gdino_error(j);
    EXPECT_NE(e.find("gdino_config.backbone_config.model_type: 'resnet' is not supported"), std::string::npos) << e;

    j = golden_gdino_config();
    j.erase("backbone_config");
    e = gdino_error(j);
    EXPECT_NE(e.find("missing required field 'backbone_config'"), std::string::npos) << e;

    // inside a full config the path names the nesting
    json full = reference_config();
    full["gdino_config"]["d_model"] = 100;
    e = error_for(full);
    EXPECT_NE(e.find("config.json.gdino_config.d_model: 100 is not a multiple of 32"), std::string::npos) << e;

    e = error_of([] { parse_gdino_config("{", "x.json"); });
    EXPECT_NE(e.find("x.json: invalid JSON"), std::string::npos) << e;
}
