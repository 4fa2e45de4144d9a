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
        const at::Tensor extra = opt.insert_after ? opt.insert_after(id) : at::Tensor();
        const int64_t need = 1 + (extra.defined() ? extra.size(0) : 0);
        // the budget is spent: stop, unless the last token routes to a decoder (its queries still run,
        // so the caller gets their hidden states)
        if (i + 1 == opt.max_new_tokens && !extra.defined()) break;
        if (cache.length + need > cache.capacity()) {
            if (unbounded && !extra.defined()) break;  // -n -1: a full context is the end
            st.generate_seconds = since(t0);
            fail("generation reached the context length of ", cache.capacity(), " tokens after ",
                 st.generated_tokens, " new tokens", extra.defined() ? " (a routing token needs " +
                 std::to_string(need - 1) + " more positions for its queries)" : std::string(),
                 " (-c/--ctx-size, -n/--n-predict)");
        }
        at::Tensor next = at::full({1, 1}, id, at::kLong).to(model.device());
        if (!extra.defined()) {
            logits = model.forward(next, cache);
            continue;
        }
        VLLM_CHECK(extra.dim() == 2 && extra.size(1) == model.config().hidden_size && extra.size(0) > 0,
                   "generate: insert_after must give [K, hidden] rows");
        at::Tensor rows = at::cat({model.embed(next), extra.to(model.device(), model.dtype()).unsqueeze(0)}, 1);
        at::Tensor hidden = model.hidden_states(rows, cache);  // [1, 1 + K, hidden], post-norm
        st.inserted_tokens += extra.size(0);
        if (opt.on_inserted) opt.on_inserted(id, hidden[0].narrow(0, 1, extra.size(0)));
        logits = model.lm_head(hidden.narrow(1, hidden.size(1) - 1, 1)).view({1, -1});
        if (i + 1 == opt.max_new_tokens) break;
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
