// The expected-weight layouts are exactly the state dicts of the reference
// modules (transformers 4.34.0, tools/golden/layouts.py), for the tiny configs
// make-tiny writes, GQA, tied embeddings with biases, and the 7B shapes.
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "llm/layout.h"
#include "vision/layout.h"
#include "visionllm/config.h"

using namespace visionllm;
using namespace visionllm::test;
using json = nlohmann::json;

namespace {

json golden_cases() { return json::parse(read_file(source_dir() + "/tests/data/golden/layouts.json"))["cases"]; }

void expect_same(const std::vector<ExpectedTensor> & ours, const json & reference, const std::string & label) {
    std::map<std::string, std::vector<int64_t>> ref;
    for (auto & [name, shape] : reference.items()) ref[name] = shape.get<std::vector<int64_t>>();
    size_t required = 0;
    for (const auto & e : ours) {
        auto it = ref.find(e.name);
        if (it == ref.end()) {
            EXPECT_TRUE(e.optional) << label << ": we expect '" << e.name << "', the reference has no such key";
            continue;
        }
        EXPECT_EQ(e.shape, it->second) << label << ": " << e.name;
        required += e.optional ? 0 : 1;
    }
    for (const auto & [name, shape] : ref) {
        bool found = false;
        for (const auto & e : ours) found = found || e.name == name;
        EXPECT_TRUE(found) << label << ": the reference has '" << name << "' " << shape_str(shape) << ", we do not";
    }
    EXPECT_GT(required, 0u) << label;
}

}  // namespace

TEST(Layout, LlamaMatchesTransformers) {
    const json cases = golden_cases();
    for (const char * name : {"llama_tiny", "llama_gqa", "llama_tied_bias", "vicuna_7b"}) {
        ModelConfig m = parse_model_config(cases[name]["config"].dump(), name);
        ASSERT_EQ(m.kind, ModelKind::Llama) << name;
        expect_same(llm::llama_expected_weights(m.llama), cases[name]["tensors"], name);
    }
}

TEST(Layout, ClipVisionMatchesTransformers) {
    const json cases = golden_cases();
    for (const char * name : {"clip_tiny", "clip_l_336"}) {
        ModelConfig m = parse_model_config(cases[name]["config"].dump(), name);
        ASSERT_EQ(m.kind, ModelKind::ClipVision) << name;
        expect_same(vision::clip_vision_expected_weights(m.clip), cases[name]["tensors"], name);
    }
}
