#include "common/llm_flags.h"

#include <ATen/Parallel.h>

#include "visionllm/device.h"
#include "visionllm/error.h"

namespace visionllm::cli {

namespace {
at::ScalarType parse_dtype(const std::string & s) {
    if (s == "auto") return at::ScalarType::Undefined;
    if (s == "f32" || s == "fp32" || s == "float32") return at::kFloat;
    if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
    if (s == "f16" || s == "fp16" || s == "float16") return at::kHalf;
    fail("--dtype: \"", s, "\" is not one of auto, f32, bf16, f16");
}
}  // namespace

void add_llm_flags(Args & a, const std::string & default_device) {
    a.add("-c,--ctx-size", "N", "context length (0: the model's max_position_embeddings)", "0");
    a.add("--device", "D", "auto, cpu, cuda or cuda:N", default_device);
    a.add("--dtype", "T", "compute dtype: auto (the checkpoint's), f32, bf16, f16 (CUDA)", "auto");
    a.add("-t,--threads", "N", "CPU threads (0: all cores)", "0");
    a.add_switch("--copy-weights", "copy weights into memory instead of mapping the checkpoint files");
}

llm::LlamaOptions llm_options(const Args & a) {
    const long long threads = a.get_int("--threads");
    VLLM_CHECK(threads >= 0, "--threads must not be negative, got ", threads);
    if (threads > 0) at::set_num_threads(int(threads));
    llm::LlamaOptions o;
    o.device = resolve_device(a.get("--device"));
    o.dtype = parse_dtype(a.get("--dtype"));
    o.context = a.get_int("--ctx-size");
    VLLM_CHECK(o.context >= 0, "-c/--ctx-size must not be negative, got ", o.context);
    o.copy_weights = a.on("--copy-weights");
    return o;
}

}  // namespace visionllm::cli
