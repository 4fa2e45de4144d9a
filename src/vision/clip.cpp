#include "vision/clip.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::vision {

namespace {

LinearLayer bind_linear(const WeightView & w, const std::string & name, int64_t out, int64_t in,
                        const llm::Loader & load) {
    return {load(w, name + ".weight", {out, in}), load(w, name + ".bias", {out})};
}

LayerNorm bind_norm(const WeightView & w, const std::string & name, int64_t n, double eps, const llm::Loader & load) {
    return {load(w, name + ".weight", {n}), load(w, name + ".bias", {n}), eps};
}

}  // namespace

at::Tensor LinearLayer::forward(const at::Tensor & x) const { return kernels::linear(x, weight, bias); }

at::Tensor LayerNorm::forward(const at::Tensor & x) const { return kernels::layer_norm(x, weight, bias, eps); }

// ---------------------------------------------------------------- embeddings

CLIPVisionEmbeddings::CLIPVisionEmbeddings(const ClipVisionConfig & c, const WeightView & w, const llm::Loader & load)
    : patch_(c.patch_size), image_size_(c.image_size) {
    const int64_t h = c.hidden_size;
    class_embedding_ = load(w, "embeddings.class_embedding", {h});
    patch_embedding_ = load(w, "embeddings.patch_embedding.weight", {h, c.num_channels, patch_, patch_});
    position_embedding_ = load(w, "embeddings.position_embedding.weight", {c.num_patches() + 1, h});
}

at::Tensor CLIPVisionEmbeddings::forward(const at::Tensor & pixel_values) const {
    VLLM_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == patch_embedding_.size(1) &&
                   pixel_values.size(2) == image_size_ && pixel_values.size(3) == image_size_,
               "vision tower: pixel_values must be [n, ", patch_embedding_.size(1), ", ", image_size_, ", ",
               image_size_, "], got ", pixel_values.sizes());
    const int64_t n = pixel_values.size(0), h = class_embedding_.size(0), g = image_size_ / patch_;
    // Conv2d(k = stride = patch, no bias) as one GEMM over the unfolded patches:
    // [n, 3, g, p, g, p] -> [n, g, g, 3, p, p] -> [n*g*g, 3*p*p]
    at::Tensor x = pixel_values.to(patch_embedding_.scalar_type())
                       .view({n, pixel_values.size(1), g, patch_, g, patch_})
                       .permute({0, 2, 4, 1, 3, 5})
                       .reshape({n * g * g, -1});
    at::Tensor patches = kernels::linear(x, patch_embedding_.reshape({h, -1})).view({n, g * g, h});
    at::Tensor out = at::empty({n, g * g + 1, h}, patches.options());
    out.select(1, 0).copy_(class_embedding_.expand({n, h}));
    out.narrow(1, 1, g * g).copy_(patches);
    out.add_(position_embedding_.unsqueeze(0));
    return out;
}

// ---------------------------------------------------------------- encoder

CLIPAttention::CLIPAttention(const ClipVisionConfig & c, const WeightView & w, const llm::Loader & load)
    : heads_(c.num_attention_heads), head_dim_(c.hidden_size / c.num_attention_heads) {
    const int64_t h = c.hidden_size;
    VLLM_CHECK(heads_ > 0 && h % heads_ == 0, "config: vision hidden_size ", h,
               " is not divisible by num_attention_heads ", heads_);
    LinearLayer q = bind_linear(w, "q_proj", h, h, load), k = bind_linear(w, "k_proj", h, h, load),
                v = bind_linear(w, "v_proj", h, h, load);
    qkv_.weight = at::cat({q.weight, k.weight, v.weight}, 0);
    qkv_.bias = at::cat({q.bias, k.bias, v.bias}, 0);
    out_proj_ = bind_linear(w, "out_proj", h, h, load);
}

at::Tensor CLIPAttention::forward(const at::Tensor & x) const {
    const int64_t n = x.size(0), T = x.size(1);
    // [n, T, 3, H, D]: q, k, v as strided [n, H, T, D] views (the kernel wants only the last dim contiguous)
    at::Tensor qkv = qkv_.forward(x).view({n, T, 3, heads_, head_dim_});
    at::Tensor q = qkv.select(2, 0).transpose(1, 2), k = qkv.select(2, 1).transpose(1, 2),
               v = qkv.select(2, 2).transpose(1, 2);
    at::Tensor o = kernels::attention(q, k, v, /*causal=*/false, 1.0 / std::sqrt(double(head_dim_)));
    return out_proj_.forward(o.transpose(1, 2).reshape({n, T, heads_ * head_dim_}));
}

CLIPMLP::CLIPMLP(const ClipVisionConfig & c, const WeightView & w, const llm::Loader & load) {
    VLLM_CHECK(c.hidden_act == "quick_gelu", "config: vision hidden_act '", c.hidden_act,
               "' is not supported (CLIP uses quick_gelu)");
    fc1_ = bind_linear(w, "fc1", c.intermediate_size, c.hidden_size, load);
    fc2_ = bind_linear(w, "fc2", c.hidden_size, c.intermediate_size, load);
}

at::Tensor CLIPMLP::forward(const at::Tensor & x) const {
    // the bias add rides along with the activation: one pass over the [n, T, 4*hidden] activations
    at::Tensor y = kernels::linear(x, fc1_.weight);
    kernels::bias_act_(y, fc1_.bias, kernels::Activation::QuickGelu);
    return fc2_.forward(y);
}

CLIPEncoderLayer::CLIPEncoderLayer(const ClipVisionConfig & c, const WeightView & w, const llm::Loader & load)
    : layer_norm1_(bind_norm(w, "layer_norm1", c.hidden_size, c.layer_norm_eps, load)),
      layer_norm2_(bind_norm(w, "layer_norm2", c.hidden_size, c.layer_norm_eps, load)),
      self_attn_(c, w.view("self_attn."), load),
      mlp_(c, w.view("mlp."), load) {}

at::Tensor CLIPEncoderLayer::forward(const at::Tensor & x) const {
    at::Tensor h = x + self_attn_.forward(layer_norm1_.forward(x));
    return h.add_(mlp_.forward(layer_norm2_.forward(h)));
}

CLIPVisionTransformer::CLIPVisionTransformer(const ClipVisionConfig & c, const WeightView & w,
                                             const llm::Loader & load, int64_t num_layers)
    : config_(c),
      embeddings_(c, w, load),
      pre_layrnorm_(bind_norm(w, "pre_layrnorm", c.hidden_size, c.layer_norm_eps, load)) {
    VLLM_CHECK(c.patch_size > 0 && c.image_size % c.patch_size == 0, "config: vision image_size ", c.image_size,
               " is not a multiple of patch_size ", c.patch_size);
    const int64_t n = num_layers <= 0 ? c.num_hidden_layers : std::min(num_layers, c.num_hidden_layers);
    layers_.reserve(size_t(n));
    for (int64_t i = 0; i < n; ++i)
        layers_.emplace_back(c, w.view("encoder.layers." + std::to_string(i) + "."), load);
}

int64_t CLIPVisionTransformer::resolve_index(int64_t index) const {
    const int64_t count = config_.num_hidden_layers + 1;  // embeddings + one per layer
    const int64_t i = index < 0 ? count + index : index;
    VLLM_CHECK(i >= 0 && i < count, "vision tower: hidden state index ", index, " is out of range for ",
               config_.num_hidden_layers, " layers");
    VLLM_CHECK(i <= bound_layers(), "vision tower: hidden state ", index, " needs layer ", i, " but only ",
               bound_layers(), " layers were loaded");
    return i;
}

std::vector<at::Tensor> CLIPVisionTransformer::hidden_states(const at::Tensor & pixel_values,
                                                             const std::vector<int64_t> & indices) const {
    VLLM_CHECK(!indices.empty(), "vision tower: no hidden states requested");
    std::vector<int64_t> want;
    for (int64_t i : indices) want.push_back(resolve_index(i));
    const int64_t deepest = *std::max_element(want.begin(), want.end());
    std::vector<at::Tensor> out(want.size());
    auto keep = [&](int64_t level, const at::Tensor & h) {
        for (size_t k = 0; k < want.size(); ++k)
            if (want[k] == level) out[k] = h;
    };
    at::Tensor h = pre_layrnorm_.forward(embeddings_.forward(pixel_values));
    keep(0, h);
    for (int64_t l = 0; l < deepest; ++l) {
        h = layers_[size_t(l)].forward(h);
        keep(l + 1, h);
    }
    return out;
}

// ---------------------------------------------------------------- bridge

VLBridge::VLBridge(const WeightView & w, int64_t vis_hidden, int64_t llm_hidden, const llm::Loader & load)
    : fc0_(bind_linear(w, "0", llm_hidden, vis_hidden, load)), fc2_(bind_linear(w, "2", llm_hidden, llm_hidden, load)) {}

at::Tensor VLBridge::forward(const at::Tensor & x) const {
    at::Tensor y = kernels::linear(x.to(fc0_.weight.scalar_type()), fc0_.weight);
    kernels::bias_act_(y, fc0_.bias, kernels::Activation::Gelu);
    return fc2_.forward(y);
}

}  // namespace visionllm::vision
