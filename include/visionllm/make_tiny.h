// Random-weight checkpoints in the official layout and file format, for tests,
// demos and benchmarks: config.json, tokenizer files and weight shards.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "visionllm/dtype.h"

namespace visionllm {

struct MakeTinyOptions {
    std::string out_dir;
    std::string arch = "visionllmv2";  // or "llama" / "clip" (a plain LlamaForCausalLM / CLIPVisionModel directory)
    std::string preset = "tiny";       // "tiny", or "7b" for the released model's full shapes
    std::vector<std::string> components = {"llm", "vision", "region"};
    DType dtype = DType::BF16;
    std::string format = "bin";  // "bin" (torch.save shards) or "safetensors"
    int shards = 2;
    uint64_t seed = 0;
    bool progress = true;
};

void make_tiny(const MakeTinyOptions & opts);

}  // namespace visionllm
