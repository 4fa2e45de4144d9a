#include "llm/generate.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>

#include "visionllm/error.h"

namespace visionllm::llm {

namespace {
using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

// runs the prompt (in chunks when asked) and returns the last position's logits
at::Tensor prefill(const LlamaForCausalLM & model, KVCache & cache, const at::Tensor & embeds, int64_t chunk) {
    const int64_t T = embeds.size(1);
    if (chunk <= 0 || chunk >= T) return model.forward_embeds(embeds, cache);
    at::Tensor logits;
    for (int64_t s = 0; s < T; s += chunk) logits = model.forward_embeds(embeds.narrow(1, s, std::min(chunk, T - s)), cache);
    return logits;
}

void sync(const LlamaForCausalLM & model) {
    if (model.device().is_cuda()) at::zeros({1}, at::TensorOptions().device(model.device())).cpu();
}
}  // namespace

GenerateStats generate_from_embeds(const LlamaForCausalLM & model, KVCache & cache, const at::Tensor & embeds,
                                   std::vector<int64_t> history, const GenerateOptions & opt,
                                   const std::function<bool(int64_t)> & on_token) {
    VLLM_CHECK(opt.max_new_tokens >= -1, "-n/--n-predict must be -1 (until the context is full) or more, got ",
               opt.max_new_tokens);
    VLLM_CHECK(cache.batch() == 1, "generate: runs a batch of one");
    VLLM_CHECK(embeds.defined() && embeds.dim() == 3 && embeds.size(1) > 0, "generate: the prompt has no tokens");
    const int64_t T = embeds.size(1);
    VLLM_CHECK(cache.length + T <= cache.capacity(), "the prompt has ", T, " tokens",
               cache.length ? " after " + std::to_string(cache.length) + " in the context" : std::string(),
               ", more than the context length of ", cache.capacity(), " tokens (-c/--ctx-size)");
    GenerateStats st;
    st.prompt_tokens = T;
    Sampler sampler(opt.sampler);
    auto t0 = clock_type::now();
    at::Tensor logits = prefill(model, cache, embeds, opt.prefill_chunk);
    sync(model);
    st.prompt_seconds = since(t0);
    t0 = clock_type::now();
    const bool unbounded = opt.max_new_tokens < 0;
    for (int64_t i = 0; unbounded || i < opt.max_new_tokens; ++i) {
        const int64_t id = sampler.sample(logits[0], history);
        history.push_back(id);
        ++st.generated_tokens;
        const bool stop = std::find(opt.stop_ids.begin(), opt.stop_ids.end(), id) != opt.stop_ids.end();
        if (!on_token(id) || stop) {
            st.stopped = stop;
            break;
        }
        if (i + 1 == opt.max_new_tokens) break;
        if (cache.length >= cache.capacity()) {
            if (unbounded) break;  // -n -1: a full context is the end
            st.generate_seconds = since(t0);
            fail("generation reached the context length of ", cache.capacity(),
                 " tokens after ", st.generated_tokens, " new tokens (-c/--ctx-size, -n/--n-predict)");
        }
        at::Tensor next = at::full({1, 1}, id, at::kLong);
        logits = model.forward(next, cache);
    }
    sync(model);
    st.generate_seconds = since(t0);
    return st;
}

GenerateStats generate(const LlamaForCausalLM & model, KVCache & cache, const std::vector<int64_t> & prompt,
                       const GenerateOptions & opt, const std::function<bool(int64_t)> & on_token) {
    VLLM_CHECK(!prompt.empty(), "generate: the prompt has no tokens");
    at::Tensor ids = at::tensor(prompt, at::kLong).view({1, -1});
    return generate_from_embeds(model, cache, model.embed(ids), prompt, opt, on_token);
}

}  // namespace visionllm::llm
