// Next-token sampling over a logits row, with transformers' filters in
// generate()'s order: repetition penalty, temperature, top-k, top-p, then min-p.
// temperature <= 0 is greedy. A seed makes runs reproducible.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <random>
#include <vector>

namespace visionllm::llm {

struct SamplerParams {
    float temperature = 0.8f;         // <= 0: greedy
    int top_k = 40;                   // <= 0: off
    float top_p = 0.95f;              // >= 1: off
    float min_p = 0.05f;              // <= 0: off
    float repetition_penalty = 1.0f;  // 1: off; divides positive logits of seen tokens, multiplies negative ones
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplerParams & p);
    // the processed scores for `logits` [vocab] (float32 CPU): -inf where a token is filtered out
    std::vector<float> process(const at::Tensor & logits, const std::vector<int64_t> & history) const;
    // the next token
    int64_t sample(const at::Tensor & logits, const std::vector<int64_t> & history);

private:
    SamplerParams p_;
    std::mt19937_64 rng_;
};

}  // namespace visionllm::llm
