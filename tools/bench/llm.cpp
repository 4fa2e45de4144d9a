// visionllm-bench llm: prefill and decode speed of the language model, set
// against baselines measured in the same run: the machine's read bandwidth
// (decode reads every weight once per token) and PyTorch's own matvec
// (at::linear) over the same weight matrices.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "bench/timing.h"
#include "common/args.h"
#include "common/llm_flags.h"
#include "core/membw.h"
#include "kernels/ops.h"
#include "llm/layout.h"
#include "llm/llama.h"
#include "visionllm/checkpoint.h"
#include "visionllm/device.h"
#include "visionllm/error.h"

namespace visionllm::cli {

namespace {

using json = nlohmann::ordered_json;
using clock_type = bench_clock;


// one matvec over every 2-D weight a decode step reads (layers + lm_head), best of `reps`:
// bytes per second for `fn`
template <class F>
double sweep_gbps(const std::vector<at::Tensor> & weights, int reps, c10::Device dev, F && fn) {
    uint64_t bytes = 0;
    for (const auto & w : weights) bytes += uint64_t(w.nbytes());
    double best = 0;
    for (int r = 0; r < reps; ++r) {
        auto t0 = clock_type::now();
        for (const auto & w : weights) {
            at::Tensor x = at::ones({1, w.size(1)}, w.options());
            fn(x, w);
        }
        sync(dev);
        best = std::max(best, double(bytes) / since(t0) / 1e9);
    }
    return best;
}

}  // namespace

int bench_llm(int argc, char ** argv) {
    Args a("visionllm-bench llm -m DIR [-p 512] [-n 128] [-t N] [--device D] [--json]",
           "Prefill (pp) and decode (tg) throughput of DIR's language model, llama-bench style. Decode\n"
           "bytes/s count the weights one token reads and are set against the read bandwidth measured in\n"
           "the same run; 'torch matvec' runs at::linear over the same weights as the baseline. A 7B-shaped\n"
           "model for this: visionllm make-tiny -o DIR --preset 7b --components llm --arch llama");
    a.add("-m,--model", "DIR", "model directory (VisionLLMv2 checkpoint or HF Llama)");
    a.add("-p,--n-prompt", "N", "prompt tokens for the prefill test (0: skip)", "512");
    a.add("-n,--n-gen", "N", "tokens for the decode test (0: skip)", "128");
    a.add("-r,--reps", "N", "repetitions of the matvec sweeps (best kept)", "2");
    add_llm_flags(a, "cpu");
    a.add_switch("--json", "print JSON");
    if (!a.parse(argc, argv)) return 0;
    llm::LlamaOptions lo = llm_options(a);
    const int64_t n_prompt = a.get_int("--n-prompt"), n_gen = a.get_int("--n-gen");
    const int reps = int(std::max(1LL, a.get_int("--reps")));
    VLLM_CHECK(n_prompt >= 0 && n_gen >= 0, "-p and -n must not be negative");
    const std::string dir = a.require("--model");

    // the context the test needs (-c overrides)
    if (lo.context == 0) lo.context = n_prompt + n_gen + 1;
    auto t0 = clock_type::now();
    const ModelConfig cfg = load_model_config(dir);
    const LlamaConfig & lc = cfg.kind == ModelKind::VisionLLMv2 ? cfg.vllm.llm : cfg.llama;
    lo.context = std::min(lo.context, lc.max_position_embeddings);
    auto model = llm::LlamaForCausalLM::from_pretrained(dir, lo);
    const double load_s = since(t0);
    const c10::Device dev = model->device();

    // the weights a decode step reads, as the model holds them
    const WeightMap map = WeightMap::open(dir);
    const std::string prefix = llm::llm_prefix(cfg);
    std::vector<at::Tensor> weights;
    for (const auto & e : llm::llama_expected_weights(lc)) {
        if (e.shape.size() != 2 || e.name == "model.embed_tokens.weight") continue;
        if (!map.contains(prefix + e.name)) continue;  // tied lm_head
        at::Tensor w = map.get(prefix + e.name);
        if (w.scalar_type() != model->dtype() || w.device() != dev) w = w.to(dev, model->dtype());
        weights.push_back(w);
    }

    // warm the pages (first touch of a mapped checkpoint reads the disk), then the baselines
    sweep_gbps(weights, 1, dev, [](const at::Tensor & x, const at::Tensor & w) { kernels::linear(x, w); });
    const double ours_gbps =
        sweep_gbps(weights, reps, dev, [](const at::Tensor & x, const at::Tensor & w) { kernels::linear(x, w); });
    const double torch_gbps =
        sweep_gbps(weights, reps, dev, [](const at::Tensor & x, const at::Tensor & w) { at::linear(x, w); });
    const int threads = at::get_num_threads();
    const double bw = dev.is_cpu() ? measure_read_bandwidth(size_t(1) << 30, threads, 3).best_gbps : 0;

    double pp_tps = 0, tg_tps = 0;
    llm::KVCache cache = model->new_cache();
    at::Tensor prompt = at::randint(3, lc.vocab_size, {1, std::max<int64_t>(n_prompt, 1)}, at::kLong);
    if (n_prompt > 0) {
        auto p0 = clock_type::now();
        for (int64_t s = 0; s < n_prompt; s += 512)
            model->forward(prompt.narrow(1, s, std::min<int64_t>(512, n_prompt - s)), cache);
        sync(dev);
        pp_tps = double(n_prompt) / since(p0);
    }
    if (n_gen > 0) {
        // decode continues after the prompt (or a 1-token context), as in a chat
        if (cache.length == 0) model->forward(prompt.narrow(1, 0, 1), cache);
        at::Tensor next = at::full({1, 1}, 5, at::kLong);
        auto g0 = clock_type::now();
        for (int64_t i = 0; i < n_gen; ++i) {
            at::Tensor logits = model->forward(next, cache);
            next = logits.argmax(-1).view({1, 1}).cpu();  // greedy: the step waits for its logits
        }
        tg_tps = double(n_gen) / since(g0);
    }
    const double tg_gbps = tg_tps * double(model->weight_bytes()) / 1e9;
    const char * isa = dev.is_cpu() ? kernels::cpu::linear_isa_name(kernels::cpu::linear_best_isa()) : "cuda";

    if (a.on("--json")) {
        json j = {{"bench", "llm"},
                  {"model", dir},
                  {"device", dev.str()},
                  {"dtype", c10::toString(model->dtype())},
                  {"threads", threads},
                  {"gemv_isa", isa},
                  {"load_s", load_s},
                  {"weight_bytes", model->weight_bytes()},
                  {"n_prompt", n_prompt},
                  {"n_gen", n_gen},
                  {"prefill_tps", pp_tps},
                  {"decode_tps", tg_tps},
                  {"decode_gbps", tg_gbps},
                  {"gemv_gbps", ours_gbps},
                  {"torch_matvec_gbps", torch_gbps},
                  {"read_gbps", bw}};
        if (bw > 0) j["decode_fraction_of_read_bw"] = tg_gbps / bw;
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("model: %s | %s %s | %d threads | gemv %s | %.2f GB of weights per token | loaded in %.2f s\n",
                dir.c_str(), dev.str().c_str(), c10::toString(model->dtype()), threads, isa,
                double(model->weight_bytes()) / 1e9, load_s);
    auto pct = [&](double gbps) { return bw > 0 ? 100 * gbps / bw : 0.0; };
    std::printf("| %-22s | %10s | %10s | %16s |\n", "test", "tok/s", "GB/s", "of read bandwidth");
    std::printf("| %-22s | %10s | %10s | %16s |\n", "----------------------", "----------", "----------",
                "----------------");
    if (n_prompt > 0)
        std::printf("| %-22s | %10.2f | %10s | %16s |\n", ("pp" + std::to_string(n_prompt)).c_str(), pp_tps, "-", "-");
    if (n_gen > 0)
        std::printf("| %-22s | %10.2f | %10.2f | %15.0f%% |\n", ("tg" + std::to_string(n_gen)).c_str(), tg_tps,
                    tg_gbps, pct(tg_gbps));
    const double per_tok = double(model->weight_bytes()) / 1e9;
    std::printf("| %-22s | %10.2f | %10.2f | %15.0f%% |\n", "matvec sweep (ours)", ours_gbps / per_tok, ours_gbps,
                pct(ours_gbps));
    std::printf("| %-22s | %10.2f | %10.2f | %15.0f%% |\n", "matvec sweep (torch)", torch_gbps / per_tok, torch_gbps,
                pct(torch_gbps));
    if (bw > 0) std::printf("| %-22s | %10.2f | %10.2f | %15s |\n", "read bandwidth", bw / per_tok, bw, "100%");
    return 0;
}

}  // namespace visionllm::cli
