// WeightMap behaviour: directory resolution, prefix views, the expected-vs-found
// report, and index consistency.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "io/writers.h"
#include "visionllm/checkpoint.h"

using namespace visionllm;
using namespace visionllm::test;

namespace {
std::vector<float> k_data(64, 0.5f);

io::TensorToWrite f32(const std::string & name, std::vector<int64_t> shape) {
    return io::tensor_from_bytes(name, DType::F32, std::move(shape), k_data.data());
}
}  // namespace

TEST(WeightMap, PrefixViews) {
    TempDir d("wm");
    io::write_safetensors(d.file("model.safetensors"),
                          {f32("llm.model.norm.weight", {4}), f32("llm.lm_head.weight", {2, 4}), f32("vl_bridge.0.bias", {4})});
    WeightMap w = WeightMap::open(d.path());
    WeightView llm = w.view("llm.");
    EXPECT_TRUE(llm.contains("model.norm.weight"));
    EXPECT_FALSE(llm.contains("vl_bridge.0.bias"));
    EXPECT_EQ(llm.names(), (std::vector<std::string>{"lm_head.weight", "model.norm.weight"}));
    EXPECT_EQ(llm.view("model.").get("norm.weight").size(0), 4);
    EXPECT_EQ(llm.get("lm_head.weight", {2, 4}).size(1), 4);
    std::string e = error_of([&] { llm.get("lm_head.weight", {4, 2}); });
    EXPECT_NE(e.find("llm.lm_head.weight"), std::string::npos) << e;
    EXPECT_NE(e.find("[4, 2]"), std::string::npos) << e;
    e = error_of([&] { llm.get("nope"); });
    EXPECT_NE(e.find("llm.nope"), std::string::npos) << e;
}

TEST(WeightMap, KeyReportListsMissingUnexpectedAndMismatched) {
    TempDir d("wm");
    io::write_safetensors(d.file("model.safetensors"),
                          {f32("a.x", {4}), f32("a.y", {2, 4}), f32("a.extra", {1}), f32("b.z", {1})});
    WeightMap w = WeightMap::open(d.file("model.safetensors"));
    KeyReport r = w.check({{"x", {4}}, {"y", {4, 2}}, {"gone", {3}}, {"maybe", {1}, true}}, "a.");
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(r.missing, (std::vector<std::string>{"a.gone"}));
    EXPECT_EQ(r.unexpected, (std::vector<std::string>{"a.extra"}));
    ASSERT_EQ(r.mismatched.size(), 1u);
    EXPECT_EQ(r.mismatched[0].name, "a.y");
    EXPECT_EQ(r.mismatched[0].found, (std::vector<int64_t>{2, 4}));
    std::string text = r.to_string();
    EXPECT_NE(text.find("a.gone"), std::string::npos);
    EXPECT_NE(text.find("expected [4, 2], found [2, 4]"), std::string::npos) << text;
    EXPECT_TRUE(w.check({{"z", {1}}}, "b.").ok());
}

TEST(WeightMap, DirectoryPrefersSafetensorsLikeTransformers) {
    TempDir d("wm");
    io::write_torch_zip(d.file("pytorch_model.bin"), {f32("from_bin", {1})});
    io::write_safetensors(d.file("model.safetensors"), {f32("from_st", {1})});
    WeightMap w = WeightMap::open(d.path());
    EXPECT_TRUE(w.contains("from_st"));
    EXPECT_FALSE(w.contains("from_bin"));
}

TEST(WeightMap, EmptyDirectoryNamesWhatWasLookedFor) {
    TempDir d("wm");
    std::string e = error_of([&] { WeightMap::open(d.path()); });
    EXPECT_NE(e.find(d.path()), std::string::npos) << e;
    EXPECT_NE(e.find("pytorch_model.bin.index.json"), std::string::npos) << e;
}

TEST(WeightMap, IndexDecidesWhichShardHoldsATensor) {
    TempDir d("wm");
    io::write_safetensors(d.file("a.safetensors"), {f32("w", {1})});
    io::write_safetensors(d.file("b.safetensors"), {f32("w", {2}), f32("v", {1})});
    write_file(d.file("model.safetensors.index.json"),
               R"({"metadata": {}, "weight_map": {"w": "a.safetensors", "v": "b.safetensors"}})");
    WeightMap w = WeightMap::open(d.path());
    EXPECT_EQ(w.files().size(), 2u);
    EXPECT_EQ(w.info("w").shape, (std::vector<int64_t>{1}));  // a's copy, as listed
    EXPECT_TRUE(w.contains("v"));
}

TEST(WeightMap, MissingShardIsNamed) {
    TempDir d("wm");
    io::write_safetensors(d.file("a.safetensors"), {f32("w", {1})});
    write_file(d.file("model.safetensors.index.json"),
               R"({"weight_map": {"w": "a.safetensors", "v": "model-00002-of-00002.safetensors"}})");
    std::string e = error_of([&] { WeightMap::open(d.path()); });
    EXPECT_NE(e.find("model-00002-of-00002.safetensors"), std::string::npos) << e;
    EXPECT_NE(e.find("missing"), std::string::npos) << e;
    EXPECT_NE(e.find("model.safetensors.index.json"), std::string::npos) << e;
}

TEST(WeightMap, InvalidIndexJsonIsNamed) {
    TempDir d("wm");
    write_file(d.file("pytorch_model.bin.index.json"), "{\"weight_map\": {\"w\": ");
    std::string e = error_of([&] { WeightMap::open(d.path()); });
    EXPECT_NE(e.find("pytorch_model.bin.index.json"), std::string::npos) << e;
    EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
}

TEST(WeightMap, IndexListingATensorTheShardLacksIsAnError) {
    TempDir d("wm");
    io::write_safetensors(d.file("a.safetensors"), {f32("w", {1})});
    write_file(d.file("model.safetensors.index.json"),
               R"({"weight_map": {"w": "a.safetensors", "v": "a.safetensors"}})");
    std::string e = error_of([&] { WeightMap::open(d.path()); });
    EXPECT_NE(e.find("'v'"), std::string::npos) << e;
    EXPECT_NE(e.find("a.safetensors"), std::string::npos) << e;
}

TEST(WeightMap, IndexWithPathEscapingShardIsRefused) {
    TempDir d("wm");
    write_file(d.file("model.safetensors.index.json"), R"({"weight_map": {"w": "../etc/passwd"}})");
    std::string e = error_of([&] { WeightMap::open(d.path()); });
    EXPECT_NE(e.find("invalid shard"), std::string::npos) << e;
}
