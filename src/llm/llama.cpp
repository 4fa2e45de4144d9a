#include "llm/llama.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/progress.h"
#include "kernels/ops.h"
#include "llm/layout.h"
#include "visionllm/error.h"

namespace visionllm::llm {

// ---------------------------------------------------------------- loading

at::Tensor Loader::operator()(const WeightView & w, const std::string & name,
                              const std::vector<int64_t> & shape) const {
    at::Tensor t = w.get(name, shape);
    if (t.device() == device && t.scalar_type() == dtype) return copy ? t.clone() : t;
    return t.to(device, dtype);
}

std::string llm_prefix(const ModelConfig & cfg) {
    switch (cfg.kind) {
        case ModelKind::VisionLLMv2: return "llm.";
        case ModelKind::Llama: return "";
        default: fail(cfg.path, ": a ", model_kind_name(cfg.kind), " model has no language model");
    }
}

// ---------------------------------------------------------------- modules

at::Tensor LlamaRMSNorm::forward(const at::Tensor & x) const { return kernels::rms_norm(x, weight_, eps_); }

LlamaRotaryEmbedding::LlamaRotaryEmbedding(const LlamaConfig & c, int64_t max_positions, at::ScalarType dtype,
                                           c10::Device device) {
    // as LlamaRotaryEmbedding._set_cos_sin_cache: fp32 on the CPU, then cast to the model dtype
    const int64_t d = c.head_dim;
    at::Tensor inv_freq = 1.0 / at::pow(c.rope_theta, at::arange(0, d, 2, at::kLong).to(at::kFloat) / double(d));
    at::Tensor t = at::arange(max_positions, at::kFloat);
    if (c.rope_scaling_json != "null" && !c.rope_scaling_json.empty()) {
        // {"type": "linear", "factor": f} divides positions (LlamaLinearScalingRotaryEmbedding)
        const std::string & j = c.rope_scaling_json;
        const auto type_at = j.find("\"type\"");
        const auto factor_at = j.find("\"factor\"");
        VLLM_CHECK(type_at != std::string::npos && j.find("\"linear\"", type_at) != std::string::npos &&
                       factor_at != std::string::npos,
                   "config: rope_scaling ", j, " is not supported (only {\"type\": \"linear\", \"factor\": f})");
        const double factor = std::stod(j.substr(j.find(':', factor_at) + 1));
        VLLM_CHECK(factor > 0, "config: rope_scaling factor must be positive, got ", factor);
        t = t / factor;
    }
    at::Tensor freqs = at::outer(t, inv_freq);
    at::Tensor emb = at::cat({freqs, freqs}, -1);
    cos_ = emb.cos().to(device, dtype);
    sin_ = emb.sin().to(device, dtype);
}

std::pair<at::Tensor, at::Tensor> LlamaRotaryEmbedding::at_positions(int64_t start, int64_t T) const {
    return {cos_.narrow(0, start, T), sin_.narrow(0, start, T)};
}

at::Tensor Linear::forward(const at::Tensor & x) const { return kernels::linear(x, weight, bias); }

namespace {
Linear bind_linear(const WeightView & w, const std::string & name, int64_t out, int64_t in, bool bias,
                   const Loader & load) {
    Linear l;
    l.weight = load(w, name + ".weight", {out, in});
    if (bias) l.bias = load(w, name + ".bias", {out});
    return l;
}
}  // namespace

LlamaAttention::LlamaAttention(const LlamaConfig & c, const WeightView & w, const Loader & load)
    : heads_(c.num_attention_heads), kv_heads_(c.num_key_value_heads), head_dim_(c.head_dim) {
    const int64_t h = c.hidden_size, q = heads_ * head_dim_, kv = kv_heads_ * head_dim_;
    q_proj_ = bind_linear(w, "q_proj", q, h, c.attention_bias, load);
    k_proj_ = bind_linear(w, "k_proj", kv, h, c.attention_bias, load);
    v_proj_ = bind_linear(w, "v_proj", kv, h, c.attention_bias, load);
    o_proj_ = bind_linear(w, "o_proj", h, q, c.attention_bias, load);
}

at::Tensor LlamaAttention::forward(const at::Tensor & x, const LlamaRotaryEmbedding & rope, at::Tensor & k_cache,
                                   at::Tensor & v_cache, int64_t start) const {
    const int64_t B = x.size(0), T = x.size(1);
    auto [cos, sin] = rope.at_positions(start, T);
    at::Tensor q = kernels::rope(q_proj_.forward(x).view({B, T, heads_, head_dim_}), cos, sin);
    at::Tensor k = kernels::rope(k_proj_.forward(x).view({B, T, kv_heads_, head_dim_}), cos, sin);
    at::Tensor v = v_proj_.forward(x).view({B, T, kv_heads_, head_dim_});
    k_cache.narrow(2, start, T).copy_(k.transpose(1, 2));
    v_cache.narrow(2, start, T).copy_(v.transpose(1, 2));
    const int64_t L = start + T;
    at::Tensor o = kernels::attention(q.transpose(1, 2).contiguous(), k_cache.narrow(2, 0, L),
                                      v_cache.narrow(2, 0, L), /*causal=*/true, 1.0 / std::sqrt(double(head_dim_)));
    return o_proj_.forward(o.transpose(1, 2).reshape({B, T, heads_ * head_dim_}));
}

LlamaMLP::LlamaMLP(const LlamaConfig & c, const WeightView & w, const Loader & load) {
    VLLM_CHECK(c.hidden_act == "silu", "config: hidden_act \"", c.hidden_act, "\" is not supported (silu)");
    gate_proj_ = bind_linear(w, "gate_proj", c.intermediate_size, c.hidden_size, c.mlp_bias, load);
    up_proj_ = bind_linear(w, "up_proj", c.intermediate_size, c.hidden_size, c.mlp_bias, load);
    down_proj_ = bind_linear(w, "down_proj", c.hidden_size, c.intermediate_size, c.mlp_bias, load);
}

at::Tensor LlamaMLP::forward(const at::Tensor & x) const {
    return down_proj_.forward(kernels::silu_mul(gate_proj_.forward(x), up_proj_.forward(x)));
}

LlamaDecoderLayer::LlamaDecoderLayer(const LlamaConfig & c, const WeightView & w, const Loader & load)
    : self_attn_(c, w.view("self_attn."), load),
      mlp_(c, w.view("mlp."), load),
      input_layernorm_(load(w, "input_layernorm.weight", {c.hidden_size}), c.rms_norm_eps),
      post_attention_layernorm_(load(w, "post_attention_layernorm.weight", {c.hidden_size}), c.rms_norm_eps) {}

at::Tensor LlamaDecoderLayer::forward(const at::Tensor & x, const LlamaRotaryEmbedding & rope, at::Tensor & k_cache,
                                      at::Tensor & v_cache, int64_t start) const {
    at::Tensor h = x + self_attn_.forward(input_layernorm_.forward(x), rope, k_cache, v_cache, start);
    return h + mlp_.forward(post_attention_layernorm_.forward(h));
}

LlamaModel::LlamaModel(const LlamaConfig & c, const WeightView & w, const Loader & load, int64_t context)
    : config_(c) {
    embed_tokens_ = load(w, "embed_tokens.weight", {c.vocab_size, c.hidden_size});
    // mapped weights of the checkpoint's dtype load instantly; copies, casts and uploads take a while at 7B
    const bool slow = load.copy || !load.device.is_cpu() || embed_tokens_.scalar_type() != w.get("embed_tokens.weight").scalar_type();
    Progress progress("loading " + w.prefix() + "layers", uint64_t(c.num_hidden_layers), c.num_hidden_layers >= 8 && slow);
    layers_.reserve(size_t(c.num_hidden_layers));
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        layers_.emplace_back(c, w.view("layers." + std::to_string(i) + "."), load);
        progress.add(1);
    }
    progress.done();
    norm_ = LlamaRMSNorm(load(w, "norm.weight", {c.hidden_size}), c.rms_norm_eps);
    rotary_ = LlamaRotaryEmbedding(c, context, load.dtype, load.device);
}

at::Tensor LlamaModel::embed_tokens(const at::Tensor & ids) const {
    VLLM_CHECK(ids.scalar_type() == at::kLong, "token ids must be int64, got ", ids.scalar_type());
    if (ids.numel() > 0) {
        const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
        VLLM_CHECK(lo >= 0 && hi < config_.vocab_size, "token id ", lo < 0 ? lo : hi,
                   " is out of range: the vocabulary has ", config_.vocab_size, " tokens (0..",
                   config_.vocab_size - 1, ")");
    }
    return at::embedding(embed_tokens_, ids.to(embed_tokens_.device()));
}

at::Tensor LlamaModel::forward(const at::Tensor & inputs_embeds, KVCache & cache) const {
    VLLM_CHECK(inputs_embeds.dim() == 3 && inputs_embeds.size(2) == config_.hidden_size,
               "llm: inputs_embeds must be [batch, tokens, ", config_.hidden_size, "], got ", inputs_embeds.sizes());
    const int64_t B = inputs_embeds.size(0), T = inputs_embeds.size(1);
    VLLM_CHECK(B == cache.batch(), "llm: a batch of ", B, " does not match the KV cache's batch of ", cache.batch());
    VLLM_CHECK(T > 0, "llm: no tokens to run");
    VLLM_CHECK(cache.length + T <= cache.capacity(), "llm: ", cache.length, " tokens in the context + ", T,
               " new ones exceed the context length of ", cache.capacity(),
               " tokens (raise it with -c/--ctx-size, at most max_position_embeddings = ",
               config_.max_position_embeddings, ")");
    at::Tensor h = inputs_embeds.to(embed_tokens_.device(), embed_tokens_.scalar_type());
    for (size_t i = 0; i < layers_.size(); ++i) h = layers_[i].forward(h, rotary_, cache.k[i], cache.v[i], cache.length);
    cache.length += T;
    return norm_.forward(h);
}

// ---------------------------------------------------------------- LlamaForCausalLM

namespace {
LlamaOptions resolve(const LlamaConfig & c, const WeightView & w, LlamaOptions opt) {
    if (opt.dtype == at::ScalarType::Undefined) opt.dtype = w.get("model.embed_tokens.weight").scalar_type();
    VLLM_CHECK(opt.dtype == at::kFloat || opt.dtype == at::kBFloat16 || opt.dtype == at::kHalf,
               "llm: unsupported compute dtype ", opt.dtype, " (f32, bf16, f16)");
    VLLM_CHECK(!(opt.dtype == at::kHalf && opt.device.is_cpu()), "llm: f16 compute is not supported on the CPU; use "
               "--dtype bf16 or f32");
    if (opt.context <= 0) opt.context = c.max_position_embeddings;
    VLLM_CHECK(opt.context <= c.max_position_embeddings, "--ctx-size ", opt.context,
               " exceeds the model's max_position_embeddings (", c.max_position_embeddings, ")");
    VLLM_CHECK(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0, "config: ",
               c.num_attention_heads, " attention heads are not a multiple of ", c.num_key_value_heads,
               " key/value heads");
    return opt;
}
}  // namespace

LlamaForCausalLM::LlamaForCausalLM(const LlamaConfig & c, const WeightView & w, const LlamaOptions & opt)
    : config_(c),
      opt_(resolve(c, w, opt)),
      context_(opt_.context),
      model_(c, w.view("model."), Loader{opt_.device, opt_.dtype, opt_.copy_weights}, context_) {
    const Loader load{opt_.device, opt_.dtype, opt_.copy_weights};
    if (c.tie_word_embeddings || !w.contains("lm_head.weight"))
        lm_head_ = model_.embed_weight();
    else
        lm_head_ = load(w, "lm_head.weight", {c.vocab_size, c.hidden_size});
    const int64_t el = at::elementSize(opt_.dtype);
    for (const auto & e : llama_expected_weights(c)) {
        if (e.optional || e.name == "model.embed_tokens.weight") continue;  // embedding rows are gathered, not read
        int64_t n = 1;
        for (int64_t d : e.shape) n *= d;
        weight_bytes_ += uint64_t(n * el);
    }
}

std::unique_ptr<LlamaForCausalLM> LlamaForCausalLM::from_pretrained(const std::string & path,
                                                                    const LlamaOptions & opt) {
    const ModelConfig cfg = load_model_config(path);
    // the map may die before the model: its tensors keep the mappings alive
    return from_pretrained(cfg, WeightMap::open(path), opt);
}

std::unique_ptr<LlamaForCausalLM> LlamaForCausalLM::from_pretrained(const ModelConfig & cfg, const WeightMap & map,
                                                                    const LlamaOptions & opt) {
    const std::string prefix = llm_prefix(cfg);
    const LlamaConfig & c = cfg.kind == ModelKind::VisionLLMv2 ? cfg.vllm.llm : cfg.llama;
    KeyReport report = map.check(llama_expected_weights(c), prefix);
    if (!report.ok())
        fail(map.source(), ": the weights under \"", prefix, "\" do not match the config:\n", report.to_string());
    return std::make_unique<LlamaForCausalLM>(c, map.view(prefix), opt);
}

KVCache LlamaForCausalLM::new_cache(int64_t batch) const {
    VLLM_CHECK(batch >= 1, "llm: batch must be at least 1, got ", batch);
    KVCache cache;
    const auto o = at::TensorOptions().dtype(opt_.dtype).device(opt_.device);
    for (int64_t i = 0; i < config_.num_hidden_layers; ++i) {
        cache.k.push_back(at::empty({batch, config_.num_key_value_heads, context_, config_.head_dim}, o));
        cache.v.push_back(at::empty({batch, config_.num_key_value_heads, context_, config_.head_dim}, o));
    }
    return cache;
}

at::Tensor LlamaForCausalLM::embed(const at::Tensor & ids) const { return model_.embed_tokens(ids); }

at::Tensor LlamaForCausalLM::lm_head(const at::Tensor & hidden) const {
    return kernels::linear(hidden, lm_head_).to(at::kFloat);
}

at::Tensor LlamaForCausalLM::forward(const at::Tensor & ids, KVCache & cache, bool all_logits) const {
    VLLM_CHECK(ids.dim() == 2, "llm: ids must be [batch, tokens], got ", ids.sizes());
    return forward_embeds(embed(ids), cache, all_logits);
}

at::Tensor LlamaForCausalLM::forward_embeds(const at::Tensor & embeds, KVCache & cache, bool all_logits) const {
    at::Tensor h = model_.forward(embeds, cache);
    if (!all_logits) h = h.select(1, h.size(1) - 1);
    return lm_head(h);
}

}  // namespace visionllm::llm
