#include "common/llm_flags.h"

#include <ATen/Parallel.h>

#include <random>

#include "visionllm/device.h"
#include "visionllm/error.h"

namespace visionllm::cli {

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
    o.dtype = parse_compute_dtype(a.get("--dtype"));
    o.context = a.get_int("--ctx-size");
    VLLM_CHECK(o.context >= 0, "-c/--ctx-size must not be negative, got ", o.context);
    o.copy_weights = a.on("--copy-weights");
    return o;
}

void add_sampling_flags(Args & a) {
    a.add("-n,--n-predict", "N", "tokens to generate at most (-1: until EOS or the context is full)", "256");
    a.add("--temp", "T", "temperature; 0 is greedy", "0");
    a.add("--top-k", "K", "keep the K most likely tokens (0: off)", "40");
    a.add("--top-p", "P", "nucleus sampling threshold (1: off)", "0.95");
    a.add("--min-p", "P", "drop tokens below P x the top probability (0: off)", "0.05");
    a.add("--repeat-penalty", "R", "penalty for tokens already seen (1: off)", "1.0");
    a.add("--seed", "S", "random seed (default: random, printed to stderr)");
    a.add_switch("--ignore-eos", "keep generating past the end-of-sequence token");
}

llm::SamplerParams sampling_params(const Args & a) {
    llm::SamplerParams p;
    p.temperature = float(a.get_float("--temp"));
    p.top_k = int(a.get_int("--top-k"));
    p.top_p = float(a.get_float("--top-p"));
    p.min_p = float(a.get_float("--min-p"));
    p.repetition_penalty = float(a.get_float("--repeat-penalty"));
    p.seed = a.has("--seed") ? uint64_t(a.get_int("--seed")) : uint64_t(std::random_device{}());
    return p;
}

GenerationParams generation_params(const Args & a) {
    GenerationParams g;
    g.max_new_tokens = a.get_int("--n-predict");
    const llm::SamplerParams sp = sampling_params(a);
    g.temperature = sp.temperature;
    g.top_k = sp.top_k;
    g.top_p = sp.top_p;
    g.min_p = sp.min_p;
    g.repeat_penalty = sp.repetition_penalty;
    g.seed = sp.seed;
    g.ignore_eos = a.on("--ignore-eos");
    return g;
}

void add_engine_dtype_flags(Args & a) {
    a.add("--vision-dtype", "T", "vision side dtype: auto (f32 on the CPU, the checkpoint's on CUDA), f32, bf16, f16",
          "auto");
    a.add("--decoder-dtype", "T", "task decoder dtype: auto (as the vision side), f32, bf16, f16", "auto");
}

EngineOptions engine_options(const Args & a) {
    EngineOptions eo;
    eo.device = a.get("--device");
    eo.dtype = a.get("--dtype");
    eo.vision_dtype = a.get("--vision-dtype");
    eo.decoder_dtype = a.get("--decoder-dtype");
    eo.context = a.get_int("--ctx-size");
    eo.threads = int(a.get_int("--threads"));
    eo.copy_weights = a.on("--copy-weights");
    return eo;
}

}  // namespace visionllm::cli
