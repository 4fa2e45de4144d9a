#include "llm/layout.h"

#include <string>

namespace visionllm::llm {

std::vector<ExpectedTensor> llama_expected_weights(const LlamaConfig & c) {
    const int64_t h = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
    std::vector<ExpectedTensor> w;
    w.push_back({"model.embed_tokens.weight", {c.vocab_size, h}});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        w.push_back({p + "self_attn.q_proj.weight", {q, h}});
        w.push_back({p + "self_attn.k_proj.weight", {kv, h}});
        w.push_back({p + "self_attn.v_proj.weight", {kv, h}});
        w.push_back({p + "self_attn.o_proj.weight", {h, q}});
        if (c.attention_bias) {
            w.push_back({p + "self_attn.q_proj.bias", {q}});
            w.push_back({p + "self_attn.k_proj.bias", {kv}});
            w.push_back({p + "self_attn.v_proj.bias", {kv}});
            w.push_back({p + "self_attn.o_proj.bias", {h}});
        }
        // a non-persistent buffer in current transformers, saved by some older versions
        w.push_back({p + "self_attn.rotary_emb.inv_freq", {c.head_dim / 2}, true});
        w.push_back({p + "mlp.gate_proj.weight", {c.intermediate_size, h}});
        w.push_back({p + "mlp.up_proj.weight", {c.intermediate_size, h}});
        w.push_back({p + "mlp.down_proj.weight", {h, c.intermediate_size}});
        if (c.mlp_bias) {
            w.push_back({p + "mlp.gate_proj.bias", {c.intermediate_size}});
            w.push_back({p + "mlp.up_proj.bias", {c.intermediate_size}});
            w.push_back({p + "mlp.down_proj.bias", {h}});
        }
        w.push_back({p + "input_layernorm.weight", {h}});
        w.push_back({p + "post_attention_layernorm.weight", {h}});
    }
    w.push_back({"model.norm.weight", {h}});
    // tied embeddings may still be saved under lm_head
    w.push_back({"lm_head.weight", {c.vocab_size, h}, c.tie_word_embeddings});
    return w;
}

}  // namespace visionllm::llm
