// LlamaForCausalLM (transformers 4.34 modeling_llama.py), inference only:
// RMSNorm, rotary embeddings, multi-head / grouped-query attention over a KV
// cache, SwiGLU MLP, untied or tied lm_head. One class per reference module,
// weights bound by the reference's state-dict names. Plain C++ over at::Tensor;
// the hot ops go through kernels/ops.h.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <string>
#include <vector>

#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

namespace visionllm::llm {

// keys and values of every layer: [B, num_key_value_heads, capacity, head_dim];
// positions [0, length) are filled
struct KVCache {
    std::vector<at::Tensor> k, v;
    int64_t length = 0;
    int64_t capacity() const { return k.empty() ? 0 : k[0].size(2); }
    int64_t batch() const { return k.empty() ? 0 : k[0].size(0); }
    void clear() { length = 0; }
};

struct LlamaOptions {
    c10::Device device = c10::Device(c10::kCPU);
    // compute dtype; Undefined: the checkpoint's (bf16 for VisionLLMv2)
    at::ScalarType dtype = at::ScalarType::Undefined;
    // context length (KV-cache capacity); 0: max_position_embeddings
    int64_t context = 0;
    // copy weights out of the mapped checkpoint into anonymous memory (CPU)
    bool copy_weights = false;
};

// the weight source: checks shapes against the config and moves to device/dtype
struct Loader {
    c10::Device device;
    at::ScalarType dtype;
    bool copy;
    at::Tensor operator()(const WeightView & w, const std::string & name, const std::vector<int64_t> & shape) const;
};

class LlamaRMSNorm {
public:
    LlamaRMSNorm() = default;
    LlamaRMSNorm(at::Tensor weight, double eps) : weight_(std::move(weight)), eps_(eps) {}
    at::Tensor forward(const at::Tensor & x) const;

private:
    at::Tensor weight_;
    double eps_ = 1e-6;
};

// the cos/sin tables of LlamaRotaryEmbedding, computed as the reference does (fp32, then cast)
class LlamaRotaryEmbedding {
public:
    LlamaRotaryEmbedding() = default;
    LlamaRotaryEmbedding(const LlamaConfig & c, int64_t max_positions, at::ScalarType dtype, c10::Device device);
    // rows of the tables at positions [start, start + T): cos, sin each [T, head_dim]
    std::pair<at::Tensor, at::Tensor> at_positions(int64_t start, int64_t T) const;

private:
    at::Tensor cos_, sin_;
};

struct Linear {
    at::Tensor weight, bias;
    at::Tensor forward(const at::Tensor & x) const;
};

class LlamaAttention {
public:
    LlamaAttention(const LlamaConfig & c, const WeightView & w, const Loader & load);
    // x [B, T, hidden]; writes the layer's keys/values at [start, start + T) of k_cache / v_cache
    at::Tensor forward(const at::Tensor & x, const LlamaRotaryEmbedding & rope, at::Tensor & k_cache,
                       at::Tensor & v_cache, int64_t start) const;

private:
    int64_t heads_, kv_heads_, head_dim_;
    Linear q_proj_, k_proj_, v_proj_, o_proj_;
};

class LlamaMLP {
public:
    LlamaMLP(const LlamaConfig & c, const WeightView & w, const Loader & load);
    at::Tensor forward(const at::Tensor & x) const;

private:
    Linear gate_proj_, up_proj_, down_proj_;
};

class LlamaDecoderLayer {
public:
    LlamaDecoderLayer(const LlamaConfig & c, const WeightView & w, const Loader & load);
    at::Tensor forward(const at::Tensor & x, const LlamaRotaryEmbedding & rope, at::Tensor & k_cache,
                       at::Tensor & v_cache, int64_t start) const;

private:
    LlamaAttention self_attn_;
    LlamaMLP mlp_;
    LlamaRMSNorm input_layernorm_, post_attention_layernorm_;
};

class LlamaModel {
public:
    LlamaModel(const LlamaConfig & c, const WeightView & w, const Loader & load, int64_t context);
    at::Tensor embed_tokens(const at::Tensor & ids) const;
    // inputs_embeds [B, T, hidden] -> last hidden states after the final norm [B, T, hidden]
    at::Tensor forward(const at::Tensor & inputs_embeds, KVCache & cache) const;
    const at::Tensor & embed_weight() const { return embed_tokens_; }

private:
    LlamaConfig config_;
    at::Tensor embed_tokens_;
    std::vector<LlamaDecoderLayer> layers_;
    LlamaRMSNorm norm_;
    LlamaRotaryEmbedding rotary_;
};

class LlamaForCausalLM {
public:
    LlamaForCausalLM(const LlamaConfig & c, const WeightView & w, const LlamaOptions & opt);

    // a model directory: a Hugging Face LlamaForCausalLM folder (weights at the top level) or a
    // VisionLLMv2 checkpoint (its `llm.*` weights); keys are checked first, errors name them
    static std::unique_ptr<LlamaForCausalLM> from_pretrained(const std::string & path, const LlamaOptions & opt);
    // the same from a config and weights already opened (a caller that also loads other components)
    static std::unique_ptr<LlamaForCausalLM> from_pretrained(const ModelConfig & cfg, const WeightMap & map,
                                                             const LlamaOptions & opt);

    KVCache new_cache(int64_t batch = 1) const;

    // ids [B, T] (int64): appends to the cache and returns float32 logits, [B, vocab] for the last
    // position, or [B, T, vocab] with all_logits
    at::Tensor forward(const at::Tensor & ids, KVCache & cache, bool all_logits = false) const;
    // the same from embeddings [B, T, hidden] (the multimodal path splices image features in)
    at::Tensor forward_embeds(const at::Tensor & embeds, KVCache & cache, bool all_logits = false) const;
    at::Tensor embed(const at::Tensor & ids) const;
    // hidden states [B, T, hidden] after the final norm, without the lm_head
    at::Tensor hidden_states(const at::Tensor & embeds, KVCache & cache) const { return model_.forward(embeds, cache); }
    at::Tensor lm_head(const at::Tensor & hidden) const;

    const LlamaConfig & config() const { return config_; }
    c10::Device device() const { return opt_.device; }
    at::ScalarType dtype() const { return opt_.dtype; }
    int64_t context() const { return context_; }
    // bytes of weights one decode step reads (all layers + lm_head)
    uint64_t weight_bytes() const { return weight_bytes_; }

private:
    LlamaConfig config_;
    LlamaOptions opt_;
    int64_t context_;
    LlamaModel model_;
    at::Tensor lm_head_;
    uint64_t weight_bytes_ = 0;
};

// which prefix of `map` holds the LLM for a config: "llm." for VisionLLMv2, "" for plain Llama
std::string llm_prefix(const ModelConfig & cfg);

}  // namespace visionllm::llm
