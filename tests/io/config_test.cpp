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
