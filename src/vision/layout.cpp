#include "vision/layout.h"

#include <string>

namespace visionllm::vision {

std::vector<ExpectedTensor> clip_vision_expected_weights(const ClipVisionConfig & c) {
    const int64_t h = c.hidden_size;
    const int64_t n_pos = c.num_patches() + 1;
    std::vector<ExpectedTensor> w;
    const std::string e = "vision_model.embeddings.";
    w.push_back({e + "class_embedding", {h}});
    w.push_back({e + "patch_embedding.weight", {h, c.num_channels, c.patch_size, c.patch_size}});
    w.push_back({e + "position_embedding.weight", {n_pos, h}});
    w.push_back({e + "position_ids", {1, n_pos}, true});  // non-persistent in newer transformers
    w.push_back({"vision_model.pre_layrnorm.weight", {h}});
    w.push_back({"vision_model.pre_layrnorm.bias", {h}});
    for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
        const std::string p = "vision_model.encoder.layers." + std::to_string(i) + ".";
        for (const char * proj : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
            w.push_back({p + "self_attn." + proj + ".weight", {h, h}});
            w.push_back({p + "self_attn." + proj + ".bias", {h}});
        }
        w.push_back({p + "layer_norm1.weight", {h}});
        w.push_back({p + "layer_norm1.bias", {h}});
        w.push_back({p + "mlp.fc1.weight", {c.intermediate_size, h}});
        w.push_back({p + "mlp.fc1.bias", {c.intermediate_size}});
        w.push_back({p + "mlp.fc2.weight", {h, c.intermediate_size}});
        w.push_back({p + "mlp.fc2.bias", {h}});
        w.push_back({p + "layer_norm2.weight", {h}});
        w.push_back({p + "layer_norm2.bias", {h}});
    }
    w.push_back({"vision_model.post_layernorm.weight", {h}});
    w.push_back({"vision_model.post_layernorm.bias", {h}});
    return w;
}

std::vector<ExpectedTensor> bridge_expected_weights(int64_t vis_hidden, int64_t llm_hidden) {
    return {
        {"0.weight", {llm_hidden, vis_hidden}},
        {"0.bias", {llm_hidden}},
        {"2.weight", {llm_hidden, llm_hidden}},
        {"2.bias", {llm_hidden}},
    };
}

std::vector<ExpectedTensor> region_encoder_expected_weights(int64_t vis_hidden, int64_t llm_hidden) {
    const int64_t c1 = 64, c2 = 256;  // hard-coded in build_region_encoder
    return {
        {"mask_embedding.0.weight", {c1, 4, 7, 7}},
        {"mask_embedding.0.bias", {c1}},
        {"mask_embedding.1.weight", {c1}},
        {"mask_embedding.1.bias", {c1}},
        {"mask_embedding.3.weight", {c2, c1, 2, 2}},
        {"mask_embedding.3.bias", {c2}},
        {"mask_embedding.4.weight", {c2}},
        {"mask_embedding.4.bias", {c2}},
        {"mask_embedding.6.weight", {vis_hidden, c2, 1, 1}},
        {"mask_embedding.6.bias", {vis_hidden}},
        {"up_dim.weight", {llm_hidden, vis_hidden}},
        {"up_dim.bias", {llm_hidden}},
    };
}

}  // namespace visionllm::vision
