// visionllm-bench vision: image-encoding latency of the CLIP vision tower for
// 1 and 5 tiles (a 1x1 grid, and a 2x2 grid + thumbnail), set against PyTorch
// eager in the same run: transformers' CLIPVisionModel forward written op for
// op with ATen (the same libtorch, weights, dtype and threads; separate q/k/v
// projections, bmm + softmax attention, quick_gelu as x * sigmoid(1.702 x)).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "bench/timing.h"
#include "common/args.h"
#include "llm/llama.h"
#include "vision/clip.h"
#include "vision/layout.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"
#include "visionllm/device.h"
#include "visionllm/error.h"

namespace visionllm::cli {

namespace {

using json = nlohmann::ordered_json;
using clock_type = bench_clock;


// transformers 4.34 CLIPVisionTransformer.forward (eager attention), op for op
struct EagerClip {
    const WeightView w;
    const ClipVisionConfig c;
    c10::Device dev;
    at::ScalarType dt;
    std::map<std::string, at::Tensor> p;

    at::Tensor get(const std::string & name) {
        auto it = p.find(name);
        if (it != p.end()) return it->second;
        return p[name] = w.get(name).to(dev, dt);
    }
    at::Tensor lin(const at::Tensor & x, const std::string & n) { return at::linear(x, get(n + ".weight"), get(n + ".bias")); }
    at::Tensor ln(const at::Tensor & x, const std::string & n) {
        return at::layer_norm(x, {c.hidden_size}, get(n + ".weight"), get(n + ".bias"), c.layer_norm_eps);
    }
    at::Tensor forward(const at::Tensor & px, int64_t layers) {
        const int64_t n = px.size(0), h = c.hidden_size, H = c.num_attention_heads, D = h / H;
        at::Tensor patches = at::conv2d(px, get("embeddings.patch_embedding.weight"), {}, c.patch_size);
        patches = patches.flatten(2).transpose(1, 2);
        at::Tensor cls = get("embeddings.class_embedding").expand({n, 1, -1});
        at::Tensor x = at::cat({cls, patches}, 1) + get("embeddings.position_embedding.weight").unsqueeze(0);
        x = ln(x, "pre_layrnorm");
        const int64_t T = x.size(1);
        const double scale = 1.0 / std::sqrt(double(D));
        for (int64_t l = 0; l < layers; ++l) {
            const std::string pre = "encoder.layers." + std::to_string(l) + ".";
            at::Tensor r = x;
            at::Tensor y = ln(x, pre + "layer_norm1");
            at::Tensor q = lin(y, pre + "self_attn.q_proj") * scale;
            at::Tensor k = lin(y, pre + "self_attn.k_proj"), v = lin(y, pre + "self_attn.v_proj");
            auto heads = [&](const at::Tensor & t) { return t.view({n, T, H, D}).transpose(1, 2).reshape({n * H, T, D}); };
            at::Tensor att = at::softmax(at::bmm(heads(q), heads(k).transpose(1, 2)), -1);
            at::Tensor o = at::bmm(att, heads(v)).view({n, H, T, D}).transpose(1, 2).reshape({n, T, h});
            x = r + lin(o, pre + "self_attn.out_proj");
            r = x;
            y = lin(ln(x, pre + "layer_norm2"), pre + "mlp.fc1");
            y = y * at::sigmoid(1.702 * y);
            x = r + lin(y, pre + "mlp.fc2");
        }
        return x;
    }
};

std::vector<int64_t> parse_list(const std::string & s, const char * what) {
    std::vector<int64_t> v;
    std::stringstream ss(s);
    for (std::string item; std::getline(ss, item, ',');) {
        char * end = nullptr;
        const long long x = std::strtoll(item.c_str(), &end, 10);
        VLLM_CHECK(!item.empty() && *end == '\0' && x > 0, what, ": '", item, "' is not a positive integer");
        v.push_back(x);
    }
    VLLM_CHECK(!v.empty(), what, ": empty list");
    return v;
}

}  // namespace

int bench_vision(int argc, char ** argv) {
    Args a("visionllm-bench vision -m DIR [--tiles 1,5] [-r 3] [--dtype f32|bf16] [--device D] [--json]",
           "Latency of the CLIP vision tower on N tiles (all layers), ours against PyTorch eager (transformers'\n"
           "CLIPVisionModel forward, op for op in ATen) with the same weights, dtype and threads, in this run.\n"
           "DIR: a VisionLLMv2 checkpoint (vis_encoder.*) or a CLIPVisionModel directory. The released\n"
           "tower's shapes with random weights: visionllm make-tiny -o DIR --arch clip --preset 7b");
    a.add("-m,--model", "DIR", "VisionLLMv2 checkpoint or CLIPVisionModel directory");
    a.add("--tiles", "LIST", "tile counts to time (1: a 1x1 grid; 5: 2x2 + thumbnail)", "1,5");
    a.add("-r,--reps", "N", "timed runs per tile count (best kept)", "3");
    a.add("--dtype", "T", "compute dtype: auto (f32 on the CPU, the checkpoint's on CUDA), f32, bf16, f16", "auto");
    a.add("--device", "D", "cpu, cuda or cuda:N", "cpu");
    a.add("-t,--threads", "N", "CPU threads (0: all cores)", "0");
    a.add_switch("--json", "print JSON");
    if (!a.parse(argc, argv)) return 0;
    const std::string dir = a.require("--model");
    const auto tiles = parse_list(a.get("--tiles"), "--tiles");
    const int reps = int(std::max(1LL, a.get_int("--reps")));
    if (a.get_int("--threads") > 0) at::set_num_threads(int(a.get_int("--threads")));
    const c10::Device dev = resolve_device(a.get("--device"));

    const ModelConfig cfg = load_model_config(dir);
    VLLM_CHECK(cfg.kind == ModelKind::VisionLLMv2 || cfg.kind == ModelKind::ClipVision, dir,
               ": not a VisionLLMv2 or CLIP vision checkpoint");
    const ClipVisionConfig & vc = cfg.kind == ModelKind::VisionLLMv2 ? cfg.vllm.vision : cfg.clip;
    const std::string prefix = cfg.kind == ModelKind::VisionLLMv2 ? "vis_encoder." : "";
    const WeightMap map = WeightMap::open(dir);
    KeyReport rep = map.check(vision::clip_vision_expected_weights(vc), prefix);
    VLLM_CHECK(rep.ok(), dir, ": the vision tower's weights do not match the config:\n", rep.to_string());
    at::ScalarType dt = parse_compute_dtype(a.get("--dtype"));
    if (dt == at::ScalarType::Undefined)
        dt = dev.is_cpu() ? at::kFloat : map.get(prefix + "vision_model.pre_layrnorm.weight").scalar_type();

    auto t0 = clock_type::now();
    vision::CLIPVisionTransformer tower(vc, map.view(prefix + "vision_model."), llm::Loader{dev, dt, false});
    const double load_s = since(t0);
    EagerClip eager{map.view(prefix + "vision_model."), vc, dev, dt, {}};
    const int64_t S = vc.image_size, L = vc.num_hidden_layers;

    json results = json::array();
    if (!a.on("--json"))
        std::printf("vision tower: %s | %lld layers, hidden %lld, %lldpx | %s %s | %d threads | load %.2f s\n",
                    dir.c_str(), (long long)L, (long long)vc.hidden_size, (long long)S, dev.str().c_str(),
                    c10::toString(dt), at::get_num_threads(), load_s);
    for (int64_t n : tiles) {
        at::Tensor px = at::randn({n, 3, S, S}).to(dev, dt);
        // warm-up (first touch of mapped weights, allocator), then the best of `reps`, alternating
        at::Tensor ours_out = tower.hidden_states(px, {-1})[0];
        at::Tensor ref_out = eager.forward(px, L);
        sync(dev);
        const double rel = (ours_out.to(at::kDouble) - ref_out.to(at::kDouble)).abs().max().item<double>() /
                           ref_out.to(at::kDouble).abs().max().item<double>();
        double best_ours = 1e30, best_eager = 1e30;
        for (int r = 0; r < reps; ++r) {
            auto t = clock_type::now();
            tower.hidden_states(px, {-1});
            sync(dev);
            best_ours = std::min(best_ours, since(t));
            t = clock_type::now();
            eager.forward(px, L);
            sync(dev);
            best_eager = std::min(best_eager, since(t));
        }
        const double gflop = 2.0 * double(n) * double(S / vc.patch_size * S / vc.patch_size + 1) *
                             (double(L) * (4.0 * vc.hidden_size * vc.hidden_size +
                                           2.0 * vc.hidden_size * vc.intermediate_size)) / 1e9;
        results.push_back({{"tiles", n},
                           {"ours_s", best_ours},
                           {"torch_eager_s", best_eager},
                           {"speedup", best_eager / best_ours},
                           {"ours_gflops", gflop / best_ours},
                           {"max_rel_diff", rel}});
        if (!a.on("--json"))
            std::printf("  %lld tile%s: ours %.3f s (%.1f GFLOP/s) | torch eager %.3f s | %.2fx | max rel diff %.1e\n",
                        (long long)n, n == 1 ? " " : "s", best_ours, gflop / best_ours, best_eager,
                        best_eager / best_ours, rel);
    }
    if (a.on("--json")) {
        json j = {{"model", dir},
                  {"device", dev.str()},
                  {"dtype", c10::toString(dt)},
                  {"threads", at::get_num_threads()},
                  {"layers", L},
                  {"image_size", S},
                  {"results", results}};
        std::printf("%s\n", j.dump(2).c_str());
    }
    return 0;
}

}  // namespace visionllm::cli
