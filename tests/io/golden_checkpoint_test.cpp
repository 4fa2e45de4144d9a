// Checkpoints written by torch.save and safetensors (tools/golden/checkpoint_io.py)
// load bit-identically: every dtype, views with offsets and strides, shared
// storages, Parameters, module state dicts, sharded indexes.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "visionllm/checkpoint.h"

using visionllm::WeightMap;
using namespace visionllm::test;

namespace {

nlohmann::json manifest() {
    return nlohmann::json::parse(read_file(golden_dir("io") + "/manifest.json"))["tensors"];
}

std::string hex_of(const at::Tensor & t) {
    at::Tensor c = t.contiguous();
    const auto * p = static_cast<const uint8_t *>(c.data_ptr());
    static const char * digits = "0123456789abcdef";
    std::string s;
    for (int64_t i = 0; i < c.nbytes(); ++i) {
        s += digits[p[i] >> 4];
        s += digits[p[i] & 15];
    }
    return s;
}

// every manifest entry whose name starts with `prefix` (and is in `w` under name minus `strip`) matches
size_t expect_matches(const WeightMap & w, const std::string & prefix, const std::string & strip = "") {
    size_t n = 0;
    const nlohmann::json m = manifest();
    for (auto & [name, e] : m.items()) {
        if (name.rfind(prefix, 0) != 0) continue;
        const std::string key = name.substr(strip.size());
        if (!w.contains(key)) continue;
        const auto & info = w.info(key);
        at::Tensor t = w.get(key);
        EXPECT_EQ(visionllm::dtype_name(info.dtype), e["dtype"].get<std::string>()) << key;
        EXPECT_EQ(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), e["shape"].get<std::vector<int64_t>>())
            << key;
        EXPECT_EQ(hex_of(t), e["hex"].get<std::string>()) << key;
        ++n;
    }
    return n;
}

}  // namespace

TEST(GoldenCheckpoint, TorchSaveEveryDtypeAndView) {
    WeightMap w = WeightMap::open(golden_dir("io") + "/all.bin");
    EXPECT_EQ(w.format(), "torch");
    size_t n = expect_matches(w, "");
    EXPECT_EQ(n, w.size());
    EXPECT_GE(n, 20u);
    // views keep torch's strides, zero-copy
    EXPECT_FALSE(w.info("view.transposed").is_contiguous());
    EXPECT_EQ(w.info("view.strided_cols").strides, (std::vector<int64_t>{8, 3}));
}

TEST(GoldenCheckpoint, SafetensorsEveryDtype) {
    WeightMap w = WeightMap::open(golden_dir("io") + "/dense.safetensors");
    EXPECT_EQ(w.format(), "safetensors");
    EXPECT_EQ(expect_matches(w, "dense."), w.size());
}

TEST(GoldenCheckpoint, ModuleStateDictWithMetadata) {
    WeightMap w = WeightMap::open(golden_dir("io") + "/module_state.bin");
    EXPECT_EQ(w.size(), 4u);
    EXPECT_EQ(expect_matches(w, "module.", "module."), 4u);
}

TEST(GoldenCheckpoint, ShardedIndexesResolve) {
    for (const char * dir : {"sharded_bin", "sharded_safetensors"}) {
        WeightMap w = WeightMap::open(golden_dir("io") + "/" + dir);
        EXPECT_EQ(w.files().size(), 2u) << dir;
        EXPECT_EQ(expect_matches(w, "dense."), w.size()) << dir;
        EXPECT_EQ(w.size(), 14u) << dir;
    }
}

TEST(GoldenCheckpoint, TensorsStayValidAfterTheMapIsGone) {
    at::Tensor t;
    {
        WeightMap w = WeightMap::open(golden_dir("io") + "/all.bin");
        t = w.get("dense.f32");
    }
    EXPECT_EQ(hex_of(t), manifest()["dense.f32"]["hex"].get<std::string>());
}

TEST(GoldenCheckpoint, MappedTensorsAreWritableWithoutTouchingTheFile) {
    const std::string path = golden_dir("io") + "/dense.safetensors";
    const std::string before = read_file(path);
    {
        WeightMap w = WeightMap::open(path);
        at::Tensor t = w.get("dense.f32");
        t.mul_(2);  // copy-on-write pages
        EXPECT_NE(hex_of(t), manifest()["dense.f32"]["hex"].get<std::string>());
    }
    EXPECT_EQ(read_file(path), before);
}

TEST(GoldenCheckpoint, LegacyFormatIsRefusedClearly) {
    std::string e = error_of([] { WeightMap::open(golden_dir("io") + "/legacy.bin"); });
    EXPECT_NE(e.find("legacy.bin"), std::string::npos) << e;
    EXPECT_NE(e.find("legacy"), std::string::npos) << e;
}
