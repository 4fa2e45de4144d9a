// CLIPVisionModel (transformers 4.34 modeling_clip.py), inference only: patch +
// class + position embeddings, pre_layrnorm, pre-LN encoder layers with
// quick_gelu MLPs. Returns the hidden states VisionLLM v2 reads (the
// penultimate layer for the LLM, the last three for the region encoder), and
// skips the layers after the deepest one asked for. One class per reference
// module, weights bound by the reference's state-dict names.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "llm/llama.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

namespace visionllm::vision {

// nn.Linear with its weight (and bias) bound by name
struct LinearLayer {
    at::Tensor weight, bias;
    at::Tensor forward(const at::Tensor & x) const;
};

// nn.LayerNorm over the last dimension
struct LayerNorm {
    at::Tensor weight, bias;
    double eps = 1e-5;
    at::Tensor forward(const at::Tensor & x) const;
};

class CLIPVisionEmbeddings {
public:
    CLIPVisionEmbeddings(const ClipVisionConfig & c, const WeightView & w, const llm::Loader & load);
    // pixel_values [n, 3, S, S] -> [n, 1 + (S/p)^2, hidden]
    at::Tensor forward(const at::Tensor & pixel_values) const;

private:
    int64_t patch_, image_size_;
    at::Tensor class_embedding_, patch_embedding_, position_embedding_;
};

class CLIPAttention {
public:
    CLIPAttention(const ClipVisionConfig & c, const WeightView & w, const llm::Loader & load);
    at::Tensor forward(const at::Tensor & x) const;  // [n, T, hidden], bidirectional

private:
    int64_t heads_, head_dim_;
    LinearLayer qkv_;  // q_proj, k_proj, v_proj stacked into one [3*hidden, hidden] matrix at load
    LinearLayer out_proj_;
};

class CLIPMLP {
public:
    CLIPMLP(const ClipVisionConfig & c, const WeightView & w, const llm::Loader & load);
    at::Tensor forward(const at::Tensor & x) const;

private:
    LinearLayer fc1_, fc2_;
};

class CLIPEncoderLayer {
public:
    CLIPEncoderLayer(const ClipVisionConfig & c, const WeightView & w, const llm::Loader & load);
    at::Tensor forward(const at::Tensor & x) const;

private:
    LayerNorm layer_norm1_, layer_norm2_;
    CLIPAttention self_attn_;
    CLIPMLP mlp_;
};

// CLIPVisionModel.vision_model up to the encoder (post_layernorm is never read by VisionLLM v2)
class CLIPVisionTransformer {
public:
    // w: a view at "vision_model." (or "vis_encoder.vision_model." in a VisionLLMv2 checkpoint).
    // Only layers [0, num_layers) are bound; 0 binds them all.
    CLIPVisionTransformer(const ClipVisionConfig & c, const WeightView & w, const llm::Loader & load,
                          int64_t num_layers = 0);

    // The entries of transformers' `hidden_states` tuple (index 0: the embeddings after pre_layrnorm,
    // i: the output of layer i; negative indices count from the end as in Python), CLS included.
    // Layers after the deepest requested index are not run.
    std::vector<at::Tensor> hidden_states(const at::Tensor & pixel_values, const std::vector<int64_t> & indices) const;

    const ClipVisionConfig & config() const { return config_; }
    int64_t bound_layers() const { return int64_t(layers_.size()); }
    // a hidden_states index (possibly negative) as a non-negative one; throws naming it when out of range
    int64_t resolve_index(int64_t index) const;

private:
    ClipVisionConfig config_;
    CLIPVisionEmbeddings embeddings_;
    LayerNorm pre_layrnorm_;
    std::vector<CLIPEncoderLayer> layers_;
};

// vl_bridge "mlp2x_gelu": Linear(vis_hidden, llm_hidden) -> GELU (exact) -> Linear(llm_hidden, llm_hidden)
class VLBridge {
public:
    VLBridge(const WeightView & w, int64_t vis_hidden, int64_t llm_hidden, const llm::Loader & load);
    at::Tensor forward(const at::Tensor & x) const;

private:
    LinearLayer fc0_, fc2_;
};

}  // namespace visionllm::vision
