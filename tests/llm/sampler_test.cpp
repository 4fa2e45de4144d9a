// The sampler's filters equal transformers' logits processors (goldens from
// tools/golden/sampling.py), min-p follows MinPLogitsWarper, and sampling is
// reproducible by seed and stays inside what the filters keep.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "llm/sampler.h"

using namespace visionllm;
using json = nlohmann::json;

TEST(Sampler, FiltersMatchTransformers) {
    const json g = json::parse(test::read_file(test::source_dir() + "/tests/data/golden/sampling.json"));
    const std::vector<float> logits = g["logits"].get<std::vector<float>>();
    const std::vector<int64_t> history = g["history"].get<std::vector<int64_t>>();
    const at::Tensor t = at::tensor(logits);
    ASSERT_GE(g["cases"].size(), 48u);
    for (const auto & c : g["cases"]) {
        llm::SamplerParams p;
        p.repetition_penalty = c["repetition_penalty"].get<float>();
        p.temperature = c["temperature"].get<float>();
        p.top_k = c["top_k"].get<int>();
        p.top_p = c["top_p"].get<float>();
        p.min_p = 0;
        const std::vector<float> got = llm::Sampler(p).process(t, history);
        const std::string label = c.dump().substr(0, 90);
        ASSERT_EQ(got.size(), c["scores"].size());
        for (size_t i = 0; i < got.size(); ++i) {
            const auto & want = c["scores"][i];
            if (want.is_null()) {
                EXPECT_TRUE(std::isinf(got[i]) && got[i] < 0) << label << " token " << i << " should be filtered";
            } else {
                EXPECT_NEAR(got[i], want.get<float>(), 1e-5) << label << " token " << i;
            }
        }
    }
}

TEST(Sampler, MinPKeepsTokensWithinAFractionOfTheBest) {
    // probabilities 0.5, 0.3, 0.15, 0.05: min_p 0.5 keeps those >= 0.25
    const at::Tensor t = at::log(at::tensor(std::vector<float>{0.5f, 0.3f, 0.15f, 0.05f}));
    llm::SamplerParams p;
    p.temperature = 1;
    p.top_k = 0;
    p.top_p = 1;
    p.min_p = 0.5f;
    std::vector<float> s = llm::Sampler(p).process(t, {});
    EXPECT_FALSE(std::isinf(s[0]) || std::isinf(s[1]));
    EXPECT_TRUE(std::isinf(s[2]) && std::isinf(s[3]));
}

TEST(Sampler, GreedyIsArgmaxAfterThePenalty) {
    const at::Tensor t = at::tensor(std::vector<float>{1.0f, 3.0f, 2.9f, -1.0f});
    llm::SamplerParams p;
    p.temperature = 0;
    EXPECT_EQ(llm::Sampler(p).sample(t, {}), 1);
    p.repetition_penalty = 1.5f;  // 3.0 / 1.5 = 2.0 < 2.9
    EXPECT_EQ(llm::Sampler(p).sample(t, {1}), 2);
}

TEST(Sampler, SeedReproducesAndDrawsStayInsideTheFilter) {
    at::manual_seed(3);
    const at::Tensor t = at::randn({1000}) * 2;
    llm::SamplerParams p;
    p.temperature = 1.0f;
    p.top_k = 5;
    p.top_p = 1.0f;
    p.min_p = 0;
    p.seed = 42;
    llm::Sampler a(p), b(p);
    p.seed = 43;
    llm::Sampler c(p);
    const std::vector<float> kept = a.process(t, {});
    std::vector<int64_t> da, db, dc;
    std::map<int64_t, int> counts;
    for (int i = 0; i < 3000; ++i) {
        da.push_back(a.sample(t, {}));
        db.push_back(b.sample(t, {}));
        dc.push_back(c.sample(t, {}));
        ASSERT_FALSE(std::isinf(kept[size_t(da.back())])) << "drew a filtered token";
        counts[da.back()]++;
    }
    EXPECT_EQ(da, db);
    EXPECT_NE(da, dc);
    EXPECT_EQ(counts.size(), 5u);
    // frequencies follow the renormalised top-5 distribution
    double z = 0;
    for (const auto & [id, n] : counts) z += std::exp(double(kept[size_t(id)]));
    for (const auto & [id, n] : counts) {
        const double want = std::exp(double(kept[size_t(id)])) / z;
        EXPECT_NEAR(double(n) / 3000.0, want, 0.04) << "token " << id;
    }
}

TEST(Sampler, BadParametersAreErrors) {
    llm::SamplerParams p;
    p.top_p = 0;
    EXPECT_NE(test::error_of([&] { llm::Sampler s(p); }).find("--top-p"), std::string::npos);
    p = {};
    p.repetition_penalty = 0;
    EXPECT_NE(test::error_of([&] { llm::Sampler s(p); }).find("--repeat-penalty"), std::string::npos);
}
