// The flags that choose how the language model runs, shared by `visionllm run`
// and `visionllm-bench llm`: --device, --dtype, -c/--ctx-size, -t/--threads,
// --copy-weights.
#pragma once

#include "common/args.h"
#include "llm/llama.h"

namespace visionllm::cli {

void add_llm_flags(Args & a, const std::string & default_device = "auto");
// reads them (and applies --threads); context 0 means the model's max_position_embeddings
llm::LlamaOptions llm_options(const Args & a);

}  // namespace visionllm::cli
