// The CLIP vision tower and vl_bridge against transformers 4.34 CLIPVisionModel
// (tests/data/golden/clip, made by tools/golden/clip.py): every hidden state
// within 1e-4 relative in fp32, on a 3-layer 56px model and on the released
// tower's 336/14 geometry (577 positions).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "llm/llama.h"
#include "vision/clip.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"
#include "visionllm/device.h"

using namespace visionllm;

namespace {

double rel_err(const at::Tensor & got, const at::Tensor & want) {
    return (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>() /
           want.to(at::kDouble).abs().max().item<double>();
}

struct Case {
    std::string dir;
    ModelConfig cfg;
    WeightMap weights, expected;
};

Case open_case(const std::string & name) {
    const std::string dir = test::golden_dir("clip") + "/" + name;
    return Case{dir, load_model_config(dir), WeightMap::open(dir), WeightMap::open(dir + "/expected.safetensors")};
}

llm::Loader loader(at::ScalarType dt, c10::Device dev = c10::Device(c10::kCPU)) { return llm::Loader{dev, dt, false}; }

class ClipGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(ClipGolden, EveryHiddenStateMatchesTransformers) {
    Case c = open_case(GetParam());
    ASSERT_EQ(c.cfg.kind, ModelKind::ClipVision);
    const ClipVisionConfig & vc = c.cfg.clip;
    vision::CLIPVisionTransformer tower(vc, c.weights.view("vision_model."), loader(at::kFloat));
    at::Tensor px = c.expected.get("pixel_values").to(at::kFloat);
    std::vector<int64_t> all;
    for (int64_t i = 0; i <= vc.num_hidden_layers; ++i) all.push_back(i);
    auto hs = tower.hidden_states(px, all);
    ASSERT_EQ(hs.size(), all.size());
    for (size_t i = 0; i < hs.size(); ++i) {
        at::Tensor want = c.expected.get("hidden_" + std::to_string(i));
        ASSERT_EQ(hs[i].sizes(), want.sizes()) << "hidden_" << i;
        EXPECT_LT(rel_err(hs[i], want), 1e-4) << "hidden_" << i;
    }
}

TEST_P(ClipGolden, SelectedStatesAndBridge) {
    Case c = open_case(GetParam());
    const ClipVisionConfig & vc = c.cfg.clip;
    vision::CLIPVisionTransformer tower(vc, c.weights.view("vision_model."), loader(at::kFloat));
    at::Tensor px = c.expected.get("pixel_values").to(at::kFloat);
    // VisionLLM v2's selection: the penultimate layer for the LLM, the last three for the region encoder
    auto hs = tower.hidden_states(px, {-2, -3, -1});
    const int64_t L = vc.num_hidden_layers;
    EXPECT_LT(rel_err(hs[0], c.expected.get("hidden_" + std::to_string(L - 1))), 1e-4);
    EXPECT_LT(rel_err(hs[1], c.expected.get("hidden_" + std::to_string(L - 2))), 1e-4);
    EXPECT_LT(rel_err(hs[2], c.expected.get("hidden_" + std::to_string(L))), 1e-4);

    at::Tensor w0 = c.expected.get("bridge.0.weight");
    vision::VLBridge bridge(c.expected.view("bridge."), w0.size(1), w0.size(0), loader(at::kFloat));
    at::Tensor got = bridge.forward(hs[0].narrow(1, 1, hs[0].size(1) - 1));
    EXPECT_LT(rel_err(got, c.expected.get("bridge_out")), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Cases, ClipGolden, ::testing::Values("tiny", "p336"));

TEST(Clip, SkipsLayersAfterTheDeepestRequested) {
    Case c = open_case("tiny");
    const ClipVisionConfig & vc = c.cfg.clip;
    // binding only the first two layers is enough for hidden_states[-2] of a 3-layer tower
    vision::CLIPVisionTransformer tower(vc, c.weights.view("vision_model."), loader(at::kFloat), vc.num_hidden_layers - 1);
    at::Tensor px = c.expected.get("pixel_values").to(at::kFloat);
    auto hs = tower.hidden_states(px, {-2});
    EXPECT_LT(rel_err(hs[0], c.expected.get("hidden_2")), 1e-4);
    std::string e = test::error_of([&] { tower.hidden_states(px, {-1}); });
    EXPECT_NE(e.find("only 2 layers were loaded"), std::string::npos) << e;
}

TEST(Clip, Bf16IsCloseToFp32) {
    Case c = open_case("p336");
    const ClipVisionConfig & vc = c.cfg.clip;
    vision::CLIPVisionTransformer tower(vc, c.weights.view("vision_model."), loader(at::kBFloat16));
    at::Tensor px = c.expected.get("pixel_values").to(at::kBFloat16);
    auto hs = tower.hidden_states(px, {-1});
    EXPECT_EQ(hs[0].scalar_type(), at::kBFloat16);
    EXPECT_LT(rel_err(hs[0].to(at::kFloat), c.expected.get("hidden_2")), 3e-2);
}

TEST(Clip, BadInputsAreErrorsNamingThem) {
    Case c = open_case("tiny");
    const ClipVisionConfig & vc = c.cfg.clip;
    vision::CLIPVisionTransformer tower(vc, c.weights.view("vision_model."), loader(at::kFloat));
    std::string e = test::error_of([&] { tower.hidden_states(at::zeros({1, 3, 57, 56}), {-2}); });
    EXPECT_NE(e.find("pixel_values must be [n, 3, 56, 56]"), std::string::npos) << e;
    e = test::error_of([&] { tower.hidden_states(at::zeros({1, 3, 56, 56}), {4}); });
    EXPECT_NE(e.find("hidden state index 4 is out of range"), std::string::npos) << e;
    e = test::error_of([&] { tower.hidden_states(at::zeros({1, 3, 56, 56}), {-5}); });
    EXPECT_NE(e.find("index -5"), std::string::npos) << e;
    // a misshapen weight names its full key
    e = test::error_of([&] {
        ClipVisionConfig wrong = vc;
        wrong.intermediate_size += 1;
        vision::CLIPVisionTransformer t(wrong, c.weights.view("vision_model."), loader(at::kFloat));
    });
    EXPECT_NE(e.find("vision_model.encoder.layers.0.mlp.fc1.weight"), std::string::npos) << e;
}

TEST(Clip, CudaMatchesCpu) {
    if (!cuda_usable()) GTEST_SKIP() << "no CUDA device";
    Case c = open_case("p336");
    const ClipVisionConfig & vc = c.cfg.clip;
    const c10::Device gpu(c10::kCUDA, 0);
    vision::CLIPVisionTransformer tower(vc, c.weights.view("vision_model."), loader(at::kFloat, gpu));
    at::Tensor px = c.expected.get("pixel_values").to(gpu, at::kFloat);
    auto hs = tower.hidden_states(px, {-2, -1});
    EXPECT_LT(rel_err(hs[0].cpu(), c.expected.get("hidden_1")), 1e-3);
    EXPECT_LT(rel_err(hs[1].cpu(), c.expected.get("hidden_2")), 1e-3);
    vision::CLIPVisionTransformer half(vc, c.weights.view("vision_model."), loader(at::kBFloat16, gpu));
    auto hb = half.hidden_states(px.to(at::kBFloat16), {-1});
    EXPECT_LT(rel_err(hb[0].cpu().to(at::kFloat), c.expected.get("hidden_2")), 3e-2);
}

}  // namespace
