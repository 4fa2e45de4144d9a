// The Swin backbone of VisionLLM v2's Grounding DINO against transformers 4.40.2 SwinBackbone
// (tests/data/golden/swin, made by tools/golden/swin.py): a tiny random 4-stage model in the VisionLLM v2 key
// layout, every output map within 1e-4 relative in fp32 on inputs with exact multiples (batch 2), with padding
// everywhere (70x45) and with stages smaller than the window (32x32).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>

#include "common/test_util.h"
#include "decoders/gdino/swin.h"
#include "io/writers.h"
#include "llm/llama.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"
#include "visionllm/device.h"

using namespace visionllm;

namespace {

const std::string kPrefix = "gdino.model.backbone.conv_encoder.model.";
const std::vector<std::string> kStages = {"stage1", "stage2", "stage3", "stage4"};

double rel_err(const at::Tensor & got, const at::Tensor & want) {
    return (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>() /
           want.to(at::kDouble).abs().max().item<double>();
}

std::string dir() { return test::golden_dir("swin"); }

SwinConfig config() {
    return parse_gdino_config(test::read_file(dir() + "/config.json"), "swin/config.json").backbone;
}

struct Golden {
    SwinConfig cfg = config();
    WeightMap weights = WeightMap::open(dir() + "/model.safetensors");
    WeightMap expected = WeightMap::open(dir() + "/expected.safetensors");
};

llm::Loader loader(at::ScalarType dt, c10::Device dev = c10::Device(c10::kCPU)) { return llm::Loader{dev, dt, false}; }

class SwinGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(SwinGolden, EveryMapMatchesTransformers) {
    Golden g;
    gdino::SwinBackbone swin(g.cfg, g.weights.view(kPrefix), loader(at::kFloat));
    EXPECT_EQ(swin.channels(), (std::vector<int64_t>{16, 32, 64, 128}));
    at::Tensor px = g.expected.get(GetParam() + ".pixel_values");
    std::vector<at::Tensor> maps = swin.forward(px);
    ASSERT_EQ(maps.size(), 4u);
    for (size_t i = 0; i < maps.size(); ++i) {
        at::Tensor want = g.expected.get(GetParam() + "." + kStages[i]);
        ASSERT_EQ(maps[i].sizes(), want.sizes()) << kStages[i];
        EXPECT_EQ(maps[i].scalar_type(), at::kFloat);
        EXPECT_TRUE(maps[i].is_contiguous());
        const double e = rel_err(maps[i], want);
        EXPECT_LT(e, 1e-4) << kStages[i];
        RecordProperty(GetParam() + "." + kStages[i], std::to_string(e));
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, SwinGolden, ::testing::Values("h64w96", "h70w45", "h32w32"));

TEST(Swin, ConfigParsesAsTheReferenceWritesIt) {
    const SwinConfig c = config();
    EXPECT_EQ(c.embed_dim, 16);
    EXPECT_EQ(c.depths, (std::vector<int64_t>{2, 2, 2, 2}));
    EXPECT_EQ(c.num_heads, (std::vector<int64_t>{1, 2, 2, 4}));
    EXPECT_EQ(c.window_size, 7);
    EXPECT_EQ(c.out_features, kStages);
    EXPECT_FALSE(c.use_absolute_embeddings);
}

TEST(Swin, ExpectedWeightsMatchTheCheckpointExactly) {
    Golden g;
    const auto expected = gdino::swin_backbone_expected_weights(g.cfg);
    KeyReport r = g.weights.check(expected, kPrefix);
    EXPECT_TRUE(r.ok()) << r.to_string();
    EXPECT_EQ(r.optional_absent, 0u);  // transformers saves relative_position_index (a persistent buffer)
    EXPECT_EQ(expected.size(), g.weights.size());
    size_t optional = 0;
    for (const auto & t : expected) optional += t.optional;
    EXPECT_EQ(optional, 8u);  // one relative_position_index per block
    // hidden_states_norms only for the stages in out_features
    SwinConfig two = g.cfg;
    two.out_features = {"stage2", "stage4"};
    r = g.weights.check(gdino::swin_backbone_expected_weights(two), kPrefix);
    ASSERT_EQ(r.unexpected.size(), 4u) << r.to_string();
    EXPECT_TRUE(r.missing.empty() && r.mismatched.empty()) << r.to_string();
    for (const auto & n : r.unexpected)
        EXPECT_TRUE(n.find("hidden_states_norms.stage1.") != std::string::npos ||
                    n.find("hidden_states_norms.stage3.") != std::string::npos)
            << n;
}

TEST(Swin, WithoutTheIndexBuffersTheComputedIndexGivesTheSameMaps) {
    Golden g;
    test::TempDir tmp("swin");
    std::vector<io::TensorToWrite> keep;
    std::vector<at::Tensor> alive;
    for (const std::string & n : g.weights.names()) {
        if (n.find("relative_position_index") != std::string::npos) continue;
        const TensorInfo & info = g.weights.info(n);
        alive.push_back(g.weights.get(n).contiguous());
        keep.push_back(io::tensor_from_bytes(n, info.dtype, info.shape, alive.back().data_ptr()));
    }
    io::write_safetensors(tmp.file("model.safetensors"), keep);
    WeightMap stripped = WeightMap::open(tmp.file("model.safetensors"));
    KeyReport r = stripped.check(gdino::swin_backbone_expected_weights(g.cfg), kPrefix);
    EXPECT_TRUE(r.ok()) << r.to_string();
    EXPECT_EQ(r.optional_absent, 8u);
    gdino::SwinBackbone swin(g.cfg, stripped.view(kPrefix), loader(at::kFloat));
    auto maps = swin.forward(g.expected.get("h70w45.pixel_values"));
    for (size_t i = 0; i < maps.size(); ++i)
        EXPECT_LT(rel_err(maps[i], g.expected.get("h70w45." + kStages[i])), 1e-4) << kStages[i];

    // a saved index pointing outside the bias table is an error naming the key
    const std::string bad_key = kPrefix + "encoder.layers.1.blocks.0.attention.self.relative_position_index";
    at::Tensor bad = g.weights.get(bad_key).clone();
    bad[3][5] = 999;
    keep.push_back(io::tensor_from_bytes(bad_key, g.weights.info(bad_key).dtype, g.weights.info(bad_key).shape,
                                         bad.data_ptr()));
    io::write_safetensors(tmp.file("bad.safetensors"), keep);
    WeightMap broken = WeightMap::open(tmp.file("bad.safetensors"));
    std::string e = test::error_of([&] { gdino::SwinBackbone s(g.cfg, broken.view(kPrefix), loader(at::kFloat)); });
    EXPECT_NE(e.find(bad_key + ": values must lie in [0, 169), found [0, 999]"), std::string::npos) << e;
}

TEST(Swin, SizesAlternateThroughTheLayoutCache) {
    Golden g;
    gdino::SwinBackbone swin(g.cfg, g.weights.view(kPrefix), loader(at::kFloat));
    for (const char * c : {"h70w45", "h32w32", "h70w45", "h64w96", "h32w32"}) {
        auto maps = swin.forward(g.expected.get(std::string(c) + ".pixel_values"));
        for (size_t i = 0; i < maps.size(); ++i)
            EXPECT_LT(rel_err(maps[i], g.expected.get(std::string(c) + "." + kStages[i])), 1e-4) << c << " " << kStages[i];
    }
    // one batch item alone equals its row of the batch
    at::Tensor px = g.expected.get("h64w96.pixel_values");
    auto one = swin.forward(px.narrow(0, 1, 1));
    for (size_t i = 0; i < one.size(); ++i)
        EXPECT_LT(rel_err(one[i], g.expected.get("h64w96." + kStages[i]).narrow(0, 1, 1)), 1e-4) << kStages[i];
}

TEST(Swin, OutFeaturesSubsetSkipsLaterStages) {
    Golden g;
    SwinConfig c = g.cfg;
    c.out_features = {"stem", "stage2", "stage3"};
    // the checkpoint has no hidden_states_norms.stem: a missing key names itself
    std::string e = test::error_of([&] { gdino::SwinBackbone s(c, g.weights.view(kPrefix), loader(at::kFloat)); });
    EXPECT_NE(e.find(kPrefix + "hidden_states_norms.stem.weight"), std::string::npos) << e;
    c.out_features = {"stage2", "stage3"};
    gdino::SwinBackbone swin(c, g.weights.view(kPrefix), loader(at::kFloat));
    EXPECT_EQ(swin.channels(), (std::vector<int64_t>{32, 64}));
    auto maps = swin.forward(g.expected.get("h70w45.pixel_values"));
    ASSERT_EQ(maps.size(), 2u);
    EXPECT_LT(rel_err(maps[0], g.expected.get("h70w45.stage2")), 1e-4);
    EXPECT_LT(rel_err(maps[1], g.expected.get("h70w45.stage3")), 1e-4);
}

TEST(Swin, Bf16IsCloseToFp32) {
    Golden g;
    gdino::SwinBackbone swin(g.cfg, g.weights.view(kPrefix), loader(at::kBFloat16));
    for (const char * c : {"h64w96", "h70w45"}) {
        auto maps = swin.forward(g.expected.get(std::string(c) + ".pixel_values"));
        for (size_t i = 0; i < maps.size(); ++i) {
            EXPECT_EQ(maps[i].scalar_type(), at::kBFloat16);
            const double e = rel_err(maps[i].to(at::kFloat), g.expected.get(std::string(c) + "." + kStages[i]));
            EXPECT_LT(e, 5e-2) << c << " " << kStages[i];
            RecordProperty(std::string("bf16.") + c + "." + kStages[i], std::to_string(e));
        }
    }
}

TEST(Swin, BadInputsAreErrorsNamingThem) {
    Golden g;
    gdino::SwinBackbone swin(g.cfg, g.weights.view(kPrefix), loader(at::kFloat));
    std::string e = test::error_of([&] { swin.forward(at::zeros({1, 4, 32, 32})); });
    EXPECT_NE(e.find("pixel_values must be [B, 3, H, W], got [1, 4, 32, 32]"), std::string::npos) << e;
    e = test::error_of([&] { swin.forward(at::zeros({96})); });
    EXPECT_NE(e.find("pixel_values must be [B, 3, H, W], got [96]"), std::string::npos) << e;
    e = test::error_of([&] { swin.forward(at::zeros({1, 3, 0, 32})); });
    EXPECT_NE(e.find("pixel_values must not be empty"), std::string::npos) << e;
    e = test::error_of([&] { swin.forward(at::zeros({1, 3, 32, 32}, at::kLong)); });
    EXPECT_NE(e.find("pixel_values must be a float tensor"), std::string::npos) << e;
    e = test::error_of([&] { swin.forward(at::Tensor()); });
    EXPECT_NE(e.find("pixel_values is undefined"), std::string::npos) << e;
    // a misshapen weight names its full key
    e = test::error_of([&] {
        SwinConfig wrong = g.cfg;
        wrong.mlp_ratio = 3.0;
        gdino::SwinBackbone s(wrong, g.weights.view(kPrefix), loader(at::kFloat));
    });
    EXPECT_NE(e.find(kPrefix + "encoder.layers.0.blocks.0.intermediate.dense.weight"), std::string::npos) << e;
    e = test::error_of([&] {
        SwinConfig wrong = g.cfg;
        wrong.hidden_act = "relu";
        gdino::SwinBackbone s(wrong, g.weights.view(kPrefix), loader(at::kFloat));
    });
    EXPECT_NE(e.find("hidden_act 'relu'"), std::string::npos) << e;
}

TEST(Swin, ConfigErrorsNameTheField) {
    auto parse = [](const std::string & bb) {
        return test::error_of([&] { parse_gdino_config("{\"backbone_config\": " + bb + "}", "cfg"); });
    };
    const std::string four = "\"out_features\": [\"stage1\", \"stage2\", \"stage3\", \"stage4\"]";
    EXPECT_NE(parse("{\"embed_dim\": 16, \"num_heads\": [3, 6, 12, 24], " + four + "}").find("cfg.backbone_config.num_heads"),
              std::string::npos);
    EXPECT_NE(parse("{\"use_absolute_embeddings\": true, " + four + "}").find("backbone_config.use_absolute_embeddings"),
              std::string::npos);
    EXPECT_NE(parse("{\"out_features\": [\"stage5\"]}").find("'stage5' is not a stage name"), std::string::npos);
    EXPECT_NE(parse("{\"out_features\": [\"stage2\", \"stage1\"]}").find("stage order"), std::string::npos);
    EXPECT_NE(parse("{\"out_indices\": [1, 9]}").find("index 9 is out of range"), std::string::npos);
    // out_indices alone (stem = 0) give the same stages as out_features
    GroundingDinoConfig c = parse_gdino_config("{\"backbone_config\": {\"out_indices\": [1, 2, 3, 4]}}", "cfg");
    EXPECT_EQ(c.backbone.out_features, kStages);
}

TEST(Swin, CudaMatchesCpu) {
    if (!cuda_usable()) GTEST_SKIP() << "no CUDA device";
    Golden g;
    const c10::Device gpu(c10::kCUDA, 0);
    gdino::SwinBackbone swin(g.cfg, g.weights.view(kPrefix), loader(at::kFloat, gpu));
    for (const char * c : {"h64w96", "h70w45", "h32w32"}) {
        auto maps = swin.forward(g.expected.get(std::string(c) + ".pixel_values").to(gpu));
        for (size_t i = 0; i < maps.size(); ++i) {
            EXPECT_TRUE(maps[i].is_cuda());
            EXPECT_LT(rel_err(maps[i].cpu(), g.expected.get(std::string(c) + "." + kStages[i])), 1e-3)
                << c << " " << kStages[i];
        }
    }
    gdino::SwinBackbone half(g.cfg, g.weights.view(kPrefix), loader(at::kBFloat16, gpu));
    auto maps = half.forward(g.expected.get("h70w45.pixel_values").to(gpu));
    for (size_t i = 0; i < maps.size(); ++i)
        EXPECT_LT(rel_err(maps[i].cpu().to(at::kFloat), g.expected.get("h70w45." + kStages[i])), 5e-2) << kStages[i];
}

}  // namespace
