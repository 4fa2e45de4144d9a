#pragma once

#include <vector>

#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

namespace visionllm::llm {

// LlamaForCausalLM state dict, names as transformers writes them ("model.layers.0.self_attn.q_proj.weight")
std::vector<ExpectedTensor> llama_expected_weights(const LlamaConfig & c);

}  // namespace visionllm::llm
