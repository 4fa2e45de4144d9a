#pragma once

#include <vector>

#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

namespace visionllm::vision {

// CLIPVisionModel state dict ("vision_model.encoder.layers.0.self_attn.q_proj.weight")
std::vector<ExpectedTensor> clip_vision_expected_weights(const ClipVisionConfig & c);
// vl_bridge: Linear(vis, llm) -> GELU -> Linear(llm, llm)
std::vector<ExpectedTensor> bridge_expected_weights(int64_t vis_hidden, int64_t llm_hidden);
// RegionEncoder(hidden_dim=256, embed_dim=vis_hidden, out_dim=llm_hidden), mask_pool_type grid_sample
std::vector<ExpectedTensor> region_encoder_expected_weights(int64_t vis_hidden, int64_t llm_hidden);

}  // namespace visionllm::vision
