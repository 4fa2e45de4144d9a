// The decode loop: prefill a prompt into the KV cache, then sample one token at
// a time until a stop id or the token budget. Text handling (tokenizer,
// streaming detokenisation) stays with the caller.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "llm/llama.h"
#include "llm/sampler.h"

namespace visionllm::llm {

struct GenerateOptions {
    int64_t max_new_tokens = 256;  // -1: until a stop id or the context is full
    SamplerParams sampler;
    std::vector<int64_t> stop_ids;  // generation ends after emitting one of these (e.g. EOS)
    int64_t prefill_chunk = 0;      // >0: prefill in chunks of this many tokens (bounds activation memory)
    // The super link (visionllmv2.md §5.1): called with every generated id before it is fed back. A
    // defined result [K, hidden] is run in the same step right after the id (K more cache positions);
    // the next token is sampled from the last of them, and `on_inserted` receives the final post-norm
    // hidden states [K, hidden] of those rows. The ids of the inserted rows are not reported as tokens.
    std::function<at::Tensor(int64_t)> insert_after;
    std::function<void(int64_t id, const at::Tensor & hidden)> on_inserted;
};

struct GenerateStats {
    int64_t prompt_tokens = 0, generated_tokens = 0;
    double prompt_seconds = 0, generate_seconds = 0;
    bool stopped = false;  // ended on a stop id rather than the budget
    int64_t inserted_tokens = 0;  // cache positions added by insert_after
    double prompt_tps() const { return prompt_seconds > 0 ? double(prompt_tokens) / prompt_seconds : 0; }
    // the first token comes from the prefill's logits, so decode speed counts the steps after it
    double generate_tps() const {
        return generate_seconds > 0 && generated_tokens > 1 ? double(generated_tokens - 1) / generate_seconds : 0;
    }
};

// `on_token` sees every generated id, the stop id included; returning false ends generation.
// A cache that already holds a context (multi-turn) is continued.
GenerateStats generate(const LlamaForCausalLM & model, KVCache & cache, const std::vector<int64_t> & prompt,
                       const GenerateOptions & opt, const std::function<bool(int64_t)> & on_token);

// the same for a prompt given as embeddings [1, T, hidden] (the multimodal path)
GenerateStats generate_from_embeds(const LlamaForCausalLM & model, KVCache & cache, const at::Tensor & embeds,
                                   std::vector<int64_t> history, const GenerateOptions & opt,
                                   const std::function<bool(int64_t)> & on_token);

}  // namespace visionllm::llm
