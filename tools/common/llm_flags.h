// The flags that choose how the language model runs, shared by `visionllm run`,
// `visionllm chat` and `visionllm-bench llm`: --device, --dtype, -c/--ctx-size, -t/--threads,
// --copy-weights.
#pragma once

#include "common/args.h"
#include "llm/llama.h"
#include "llm/sampler.h"
#include "visionllm/engine.h"

namespace visionllm::cli {

void add_llm_flags(Args & a, const std::string & default_device = "auto");
// reads them (and applies --threads); context 0 means the model's max_position_embeddings
llm::LlamaOptions llm_options(const Args & a);

// the generation flags of `run` and `chat`: -n/--n-predict, --temp, --top-k, --top-p, --min-p,
// --repeat-penalty, --seed, --ignore-eos
void add_sampling_flags(Args & a);
// the sampler's settings from them; without --seed a random one (callers print it)
llm::SamplerParams sampling_params(const Args & a);
// the same as the Engine's GenerationParams (with -n and --ignore-eos)
GenerationParams generation_params(const Args & a);

// --vision-dtype and --decoder-dtype (chat, detect)
void add_engine_dtype_flags(Args & a);
// EngineOptions from add_llm_flags' and add_engine_dtype_flags' flags
EngineOptions engine_options(const Args & a);

}  // namespace visionllm::cli
