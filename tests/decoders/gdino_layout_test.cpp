// The Grounding DINO key layout (src/decoders/gdino/layout.cpp) against the reference's state_dict(): the golden
// checkpoint of tools/golden/gdino.py (OVGroundingDinoForObjectDetection's names, every alias), the layout that
// script recorded, and the released model's shapes (configs/visionllmv2-7b.config.json, visionllmv2.md §7).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "decoders/gdino/layout.h"
#include "engine/layout.h"
#include "io/writers.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

using namespace visionllm;
using namespace visionllm::test;
using json = nlohmann::json;

namespace {

const std::string kBackbone = "model.backbone.conv_encoder.model.";

GroundingDinoConfig golden_config() {
    const std::string path = golden_dir("gdino") + "/config.json";
    return parse_gdino_config(read_file(path), path);
}

json golden_layout() { return json::parse(read_file(golden_dir("gdino") + "/layout.json")); }

std::map<std::string, ExpectedTensor> by_name(const std::vector<ExpectedTensor> & ts) {
    std::map<std::string, ExpectedTensor> m;
    for (const auto & t : ts) {
        EXPECT_TRUE(m.emplace(t.name, t).second) << "listed twice: " << t.name;
    }
    return m;
}

// ours == reference (name -> shape), both ways, the backbone and the rest reported apart
void expect_same(const std::vector<ExpectedTensor> & ours, const std::map<std::string, std::vector<int64_t>> & ref,
                 const std::string & label) {
    const auto mine = by_name(ours);
    for (const auto & [name, t] : mine) {
        const std::string part = name.rfind(kBackbone, 0) == 0 ? " (Swin backbone)" : "";
        auto it = ref.find(name);
        if (it == ref.end()) {
            ADD_FAILURE() << label << part << ": we expect '" << name << "', the reference has no such key";
            continue;
        }
        EXPECT_EQ(t.shape, it->second) << label << part << ": " << name;
    }
    for (const auto & [name, shape] : ref) {
        const std::string part = name.rfind(kBackbone, 0) == 0 ? " (Swin backbone)" : "";
        EXPECT_TRUE(mine.count(name)) << label << part << ": the reference has '" << name << "' " << shape_str(shape)
                                      << ", we do not";
    }
}

}  // namespace

TEST(GdinoLayout, GoldenCheckpointHasExactlyTheLayoutsKeys) {
    const GroundingDinoConfig c = golden_config();
    const auto expected = gdino::gdino_expected_weights(c);
    WeightMap w = WeightMap::open(golden_dir("gdino") + "/checkpoint");
    const KeyReport r = w.check(expected, "gdino.");
    EXPECT_TRUE(r.ok()) << r.to_string(0);
    EXPECT_EQ(r.optional_absent, 0u) << "the golden checkpoint holds every alias";
    EXPECT_EQ(w.size(), expected.size());
    for (const auto & n : w.names()) EXPECT_EQ(n.rfind("gdino.", 0), 0u) << n;
}

TEST(GdinoLayout, OptionalExactlyForTheSecondAliasOn) {
    // layout.json: [name, shape, dtype, alias_of] in state_dict() order; alias_of is the first key sharing the storage
    const auto mine = by_name(gdino::gdino_expected_weights(golden_config()));
    size_t aliases = 0;
    const json layout = golden_layout();
    for (const auto & k : layout["keys"]) {
        std::string name = k[0].get<std::string>();
        ASSERT_EQ(name.rfind("gdino.", 0), 0u) << name;
        name = name.substr(6);
        auto it = mine.find(name);
        ASSERT_NE(it, mine.end()) << name;
        EXPECT_EQ(it->second.shape, k[1].get<std::vector<int64_t>>()) << name;
        const bool alias = !k[3].is_null();
        // Swin's relative_position_index buffers may be optional too (recomputable from window_size)
        const bool buffer = name.size() > 24 && name.compare(name.size() - 23, 23, "relative_position_index") == 0;
        if (!buffer)
            EXPECT_EQ(it->second.optional, alias) << name << (alias ? " aliases " + k[3].get<std::string>() : "");
        EXPECT_EQ(k[2].get<std::string>(), buffer ? "int64" : "float32") << name;
        aliases += alias;
    }
    // 2 decoder layers: bbox_embed.{0,1} and model.decoder.bbox_embed.1 (3 x 6 tensors), mask_embed.1 (6)
    EXPECT_EQ(aliases, 24u);
}

TEST(GdinoLayout, CheckpointWithoutAliasesStillChecksOk) {
    // what a save_pretrained safetensors dedup leaves: the first alias of each shared head
    const GroundingDinoConfig c = golden_config();
    const auto expected = gdino::gdino_expected_weights(c);
    WeightMap src = WeightMap::open(golden_dir("gdino") + "/checkpoint");
    std::vector<at::Tensor> keep;
    std::vector<io::TensorToWrite> out;
    size_t dropped = 0;
    for (const auto & e : expected) {
        if (e.optional) {
            dropped++;
            continue;
        }
        at::Tensor t = src.get("gdino." + e.name).contiguous();
        keep.push_back(t);
        const DType dt = t.scalar_type() == at::kLong ? DType::I64 : DType::F32;
        out.push_back(io::tensor_from_bytes("gdino." + e.name, dt, t.sizes().vec(), t.data_ptr()));
    }
    TempDir d("gdino-dedup");
    io::write_safetensors(d.file("model.safetensors"), out);
    WeightMap w = WeightMap::open(d.file("model.safetensors"));
    const KeyReport r = w.check(expected, "gdino.");
    EXPECT_TRUE(r.ok()) << r.to_string(0);
    EXPECT_EQ(r.optional_absent, dropped);
    EXPECT_GT(dropped, 0u);
}

TEST(GdinoLayout, ReleasedModelMatchesTheReference) {
    ModelConfig m = load_model_config(source_dir() + "/configs/visionllmv2-7b.config.json");
    ASSERT_TRUE(m.vllm.gdino);
    const auto ours = gdino::gdino_expected_weights(*m.vllm.gdino);
    // every key and shape of the reference module tree built from the same gdino_config (tools/golden/gdino.py)
    std::map<std::string, std::vector<int64_t>> ref;
    const json layout = golden_layout();
    for (auto & [name, shape] : layout["full"]["tensors"].items()) ref[name] = shape.get<std::vector<int64_t>>();
    expect_same(ours, ref, "7B gdino");

    // visionllmv2.md §7, by hand
    const auto t = by_name(ours);
    auto shape = [&](const std::string & n) {
        auto it = t.find(n);
        return it == t.end() ? std::vector<int64_t>{-1} : it->second.shape;
    };
    using S = std::vector<int64_t>;
    EXPECT_EQ(shape("model.input_proj_vision.0.0.weight"), (S{256, 192, 1, 1}));
    EXPECT_EQ(shape("model.input_proj_vision.1.0.weight"), (S{256, 384, 1, 1}));
    EXPECT_EQ(shape("model.input_proj_vision.2.0.weight"), (S{256, 768, 1, 1}));
    EXPECT_EQ(shape("model.input_proj_vision.3.0.weight"), (S{256, 768, 3, 3}));
    EXPECT_EQ(shape("model.input_proj_vision.3.1.weight"), (S{256}));
    EXPECT_EQ(shape("model.lateral_convs.0.weight"), (S{256, 96, 1, 1}));
    EXPECT_EQ(shape("model.lateral_convs.0.norm.weight"), (S{256}));
    EXPECT_EQ(shape("model.output_convs.0.weight"), (S{256, 256, 3, 3}));
    EXPECT_EQ(shape("model.mask_features.weight"), (S{256, 256, 1, 1}));
    EXPECT_EQ(shape("model.mask_features.bias"), (S{256}));
    EXPECT_EQ(shape("model.query_position_embeddings.weight"), (S{900, 256}));
    EXPECT_EQ(shape("model.level_embed"), (S{4, 256}));
    EXPECT_EQ(shape("model.enc_output.weight"), (S{256, 256}));
    EXPECT_EQ(shape("model.encoder_output_bbox_embed.layers.2.weight"), (S{4, 256}));
    EXPECT_EQ(shape("model.mask_embed.layers.2.weight"), (S{256, 256}));
    const std::string e5 = "model.encoder.layers.5.";
    EXPECT_EQ(shape(e5 + "fusion_layer.vision_param"), (S{256}));
    EXPECT_EQ(shape(e5 + "fusion_layer.attn.vision_proj.weight"), (S{1024, 256}));
    EXPECT_EQ(shape(e5 + "fusion_layer.attn.values_text_proj.weight"), (S{1024, 256}));
    EXPECT_EQ(shape(e5 + "fusion_layer.attn.out_vision_proj.weight"), (S{256, 1024}));
    EXPECT_EQ(shape(e5 + "text_enhancer_layer.self_attn.in_proj_weight"), (S{768, 256}));
    EXPECT_EQ(shape(e5 + "text_enhancer_layer.self_attn.out_proj.weight"), (S{256, 256}));
    EXPECT_EQ(shape(e5 + "text_enhancer_layer.fc1.weight"), (S{1024, 256}));
    EXPECT_EQ(shape(e5 + "deformable_layer.self_attn.sampling_offsets.weight"), (S{256, 256}));
    EXPECT_EQ(shape(e5 + "deformable_layer.self_attn.attention_weights.weight"), (S{128, 256}));
    EXPECT_EQ(shape(e5 + "deformable_layer.fc1.weight"), (S{2048, 256}));
    const std::string d5 = "model.decoder.layers.5.";
    EXPECT_EQ(shape(d5 + "self_attn.in_proj_weight"), (S{768, 256}));
    EXPECT_EQ(shape(d5 + "encoder_attn_text.in_proj_bias"), (S{768}));
    EXPECT_EQ(shape(d5 + "encoder_attn.sampling_offsets.weight"), (S{256, 256}));
    EXPECT_EQ(shape(d5 + "fc2.weight"), (S{256, 2048}));
    EXPECT_EQ(shape("model.decoder.reference_points_head.layers.0.weight"), (S{256, 512}));
    EXPECT_EQ(shape("model.decoder.bbox_embed.5.layers.2.weight"), (S{4, 256}));
    EXPECT_EQ(shape("bbox_embed.5.layers.2.weight"), (S{4, 256}));
    EXPECT_EQ(shape("mask_embed.5.layers.2.weight"), (S{256, 256}));
    EXPECT_EQ(shape("patch2query.layers.0.weight"), (S{256, 4096}));
    EXPECT_EQ(shape("patch2query.layers.2.weight"), (S{256, 256}));
    EXPECT_EQ(t.count("model.encoder.layers.6.fusion_layer.vision_param"), 0u);
    EXPECT_EQ(t.count("model.text_backbone.embeddings.word_embeddings.weight"), 0u);  // no BERT
    EXPECT_EQ(shape(kBackbone + "embeddings.patch_embeddings.projection.weight"), (S{96, 3, 4, 4}));
    EXPECT_EQ(shape(kBackbone + "hidden_states_norms.stage1.weight"), (S{96}));
    EXPECT_EQ(shape(kBackbone + "hidden_states_norms.stage4.weight"), (S{768}));
}

TEST(GdinoLayout, EngineChecksTheGdinoComponent) {
    ModelConfig m = load_model_config(source_dir() + "/configs/visionllmv2-7b.config.json");
    bool found = false;
    for (const auto & comp : engine::model_layout(m)) {
        if (comp.name != "gdino") continue;
        found = true;
        EXPECT_EQ(comp.prefix, "gdino.");
        EXPECT_TRUE(comp.checked);
        EXPECT_EQ(comp.tensors.size(), gdino::gdino_expected_weights(*m.vllm.gdino).size());
    }
    EXPECT_TRUE(found);
}

TEST(GdinoLayout, UnsharedBoxHeadsAreRequiredEach) {
    GroundingDinoConfig c = golden_config();
    c.decoder_bbox_embed_share = false;
    const auto t = by_name(gdino::gdino_expected_weights(c));
    for (int i = 0; i < int(c.decoder_layers); ++i) {
        const std::string k = "layers.2.weight", s = std::to_string(i);
        EXPECT_FALSE(t.at("model.decoder.bbox_embed." + s + "." + k).optional) << i;
        EXPECT_TRUE(t.at("bbox_embed." + s + "." + k).optional) << i;
        EXPECT_EQ(t.at("mask_embed." + s + "." + k).optional, i > 0) << i;
    }
}
