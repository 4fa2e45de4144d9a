// visionllm-bench gdino: latency of VisionLLM v2's Grounding DINO (Swin-T backbone + 6-layer encoder + 6-layer
// decoder, 900 queries) on one 800x1333 image, set against transformers' PyTorch GroundingDinoForObjectDetection
// (tools/bench/gdino_transformers.py, same shapes, fp32, same threads) run in the same process tree and interleaved
// with ours run by run, so both see the same machine load.
//
// The model: -m DIR (a VisionLLMv2 checkpoint with use_gdino), or, by default, the released gdino_config's shapes
// with random weights written to a temporary safetensors file.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/timing.h"
#include "common/args.h"
#include "decoders/gdino/grounding_dino.h"
#include "decoders/gdino/layout.h"
#include "io/writers.h"
#include "llm/llama.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"
#include "visionllm/device.h"
#include "visionllm/error.h"

namespace visionllm::cli {

namespace {

using json = nlohmann::ordered_json;

bool ends_with(const std::string & s, const std::string & tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// the released model's gdino_config (configs/visionllmv2-7b.config.json): Swin-T, d_model 256, 900 queries, ...
GroundingDinoConfig released_config() {
    GroundingDinoConfig g;
    g.backbone.out_features = {"stage1", "stage2", "stage3", "stage4"};
    return g;
}

// random weights as the reference initialises them, roughly: N(0, 0.02) matrices, unit norms, zero biases, the
// layer-scale params at 1e-4, deformable sampling offsets on transformers' grid (1..n_points around each head's
// direction) so that sampling touches the same spread of memory
at::Tensor random_weight(const GroundingDinoConfig & c, const std::string & name, const std::vector<int64_t> & shape) {
    if (shape.size() != 1) {
        at::Tensor t = at::randn(shape) * 0.02;
        if (ends_with(name, "level_embed")) t = at::randn(shape);
        return t;
    }
    if (ends_with(name, "vision_param") || ends_with(name, "text_param")) return at::full(shape, 1e-4);
    if (ends_with(name, "sampling_offsets.bias")) {
        const bool enc = name.find("encoder.layers") != std::string::npos;
        const int64_t M = enc ? c.encoder_attention_heads : c.decoder_attention_heads, L = c.num_feature_levels,
                      P = enc ? c.encoder_n_points : c.decoder_n_points;
        at::Tensor t = at::empty({M, L, P, 2});
        for (int64_t m = 0; m < M; ++m) {
            const double th = 2 * M_PI * double(m) / double(M), cx = std::cos(th), cy = std::sin(th);
            const double s = std::max(std::abs(cx), std::abs(cy));
            for (int64_t l = 0; l < L; ++l)
                for (int64_t p = 0; p < P; ++p) {
                    t[m][l][p][0] = cx / s * double(p + 1);
                    t[m][l][p][1] = cy / s * double(p + 1);
                }
        }
        return t.view(shape);
    }
    if (ends_with(name, ".weight")) return at::ones(shape);  // 1-D weights are the norms'
    return at::zeros(shape);
}

// writes the random checkpoint ("gdino." + every required key) to a temporary file, maps it, removes the file
WeightMap random_checkpoint(const GroundingDinoConfig & c) {
    std::vector<at::Tensor> keep;
    std::vector<io::TensorToWrite> tensors;
    for (const ExpectedTensor & e : gdino::gdino_expected_weights(c)) {
        if (e.optional) continue;
        at::Tensor t = random_weight(c, e.name, e.shape).to(at::kFloat).contiguous();
        keep.push_back(t);
        tensors.push_back(io::tensor_from_bytes("gdino." + e.name, DType::F32, e.shape, t.data_ptr()));
    }
    const char * tmp = std::getenv("TMPDIR");
    std::string templ = std::string(tmp && *tmp ? tmp : "/tmp") + "/visionllm-bench-gdino-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    VLLM_CHECK(mkdtemp(buf.data()) != nullptr, "visionllm-bench gdino: cannot create a temporary directory from ",
               templ);
    const std::string dir = buf.data(), path = dir + "/model.safetensors";
    io::write_safetensors(path, tensors);
    WeightMap map = WeightMap::open(path);
    // the mapping keeps the data alive
    ::unlink(path.c_str());
    ::rmdir(dir.c_str());
    return map;
}

// the transformers baseline as a child process: `cmd --serve ...`; one line per request
class Baseline {
public:
    explicit Baseline(const std::string & cmd) {
        int in[2], out[2];
        VLLM_CHECK(::pipe(in) == 0 && ::pipe(out) == 0, "--baseline: pipe() failed");
        pid_ = ::fork();
        VLLM_CHECK(pid_ >= 0, "--baseline: fork() failed");
        if (pid_ == 0) {
            ::dup2(in[0], 0);
            ::dup2(out[1], 1);
            ::close(in[1]);
            ::close(out[0]);
            ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char *>(nullptr));
            ::_exit(127);
        }
        ::close(in[0]);
        ::close(out[1]);
        to_ = ::fdopen(in[1], "w");
        from_ = ::fdopen(out[0], "r");
    }
    ~Baseline() {
        if (to_) {
            std::fputs("quit\n", to_);
            std::fclose(to_);
        }
        if (from_) std::fclose(from_);
        if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    }
    // the next JSON line the child prints (non-JSON lines are skipped)
    json read() {
        char line[1 << 16];
        while (std::fgets(line, sizeof line, from_)) {
            json j = json::parse(line, nullptr, false);
            if (!j.is_discarded() && j.is_object()) {
                if (j.contains("error")) fail("--baseline: ", j["error"].get<std::string>());
                return j;
            }
        }
        fail("--baseline: the transformers baseline exited without an answer (see its stderr above)");
    }
    double run() {
        std::fputs("run\n", to_);
        std::fflush(to_);
        return read().at("s").get<double>();
    }

private:
    pid_t pid_ = -1;
    FILE * to_ = nullptr;
    FILE * from_ = nullptr;
};

}  // namespace

int bench_gdino(int argc, char ** argv) {
    Args a("visionllm-bench gdino [-m DIR] [--size 800x1333] [--text 80] [-r 3] [--masks] [--dtype T] [--device D]\n"
           "                     [--baseline CMD] [--json]",
           "Latency of the Grounding DINO decoder (Swin-T backbone, encoder, two-stage selection, decoder, heads) on one\n"
           "image padded to a multiple of 32 with T text groups. Without -m: the released gdino_config's shapes with\n"
           "random weights. --baseline runs transformers' GroundingDinoForObjectDetection as a child process, one run\n"
           "of it after each of ours, e.g.\n"
           "  --baseline 'PYTHONPATH=.venv/tf440 .venv/bin/python tools/bench/gdino_transformers.py'\n"
           "(the size, text length and threads are passed on).");
    a.add("-m,--model", "DIR", "VisionLLMv2 checkpoint with use_gdino (default: random weights, released shapes)");
    a.add("--size", "HxW", "image height x width before the padding to a multiple of 32", "800x1333");
    a.add("--text", "N", "text groups (routing tokens; COCO's 80 classes)", "80");
    a.add("-r,--reps", "N", "timed runs (best kept; one warm-up run first)", "3");
    a.add_switch("--masks", "also run the mask branch and the mask heads (transformers has none)");
    a.add("--dtype", "T", "compute dtype: auto (f32 on the CPU, the checkpoint's on CUDA), f32, bf16", "auto");
    a.add("--device", "D", "cpu, cuda or cuda:N", "cpu");
    a.add("-t,--threads", "N", "CPU threads (0: all cores)", "0");
    a.add("--baseline", "CMD", "command starting tools/bench/gdino_transformers.py (see above)");
    a.add_switch("--json", "print JSON");
    if (!a.parse(argc, argv)) return 0;
    if (a.get_int("--threads") > 0) at::set_num_threads(int(a.get_int("--threads")));
    const c10::Device dev = resolve_device(a.get("--device"));
    const int reps = int(std::max(1LL, a.get_int("--reps")));
    const int64_t T = a.get_int("--text");
    int64_t H = 0, W = 0;
    {
        const std::string s = a.get("--size");
        const size_t x = s.find_first_of("xX");
        char * end = nullptr;
        if (x != std::string::npos) {
            H = std::strtoll(s.substr(0, x).c_str(), &end, 10);
            W = std::strtoll(s.substr(x + 1).c_str(), &end, 10);
        }
        VLLM_CHECK(H > 0 && W > 0, "--size: '", s, "' is not HxW with positive sizes");
    }
    const int64_t PH = (H + 31) / 32 * 32, PW = (W + 31) / 32 * 32;
    VLLM_CHECK(T >= 1, "--text: ", T, " text groups; at least one is needed");

    auto t0 = bench_clock::now();
    GroundingDinoConfig cfg;
    WeightMap map = [&] {
        if (!a.has("--model")) {
            cfg = released_config();
            return random_checkpoint(cfg);
        }
        const ModelConfig mc = load_model_config(a.get("--model"));
        VLLM_CHECK(mc.kind == ModelKind::VisionLLMv2 && mc.vllm.gdino, a.get("--model"),
                   ": not a VisionLLMv2 checkpoint with a gdino_config");
        cfg = *mc.vllm.gdino;
        return WeightMap::open(a.get("--model"));
    }();
    VLLM_CHECK(T >= 1 && T <= cfg.max_text_len, "--text: ", T, " is outside 1..max_text_len (", cfg.max_text_len, ")");
    KeyReport rep = map.check(gdino::gdino_expected_weights(cfg), "gdino.");
    VLLM_CHECK(rep.missing.empty() && rep.mismatched.empty(), "the gdino weights do not match the config:\n",
               rep.to_string());
    at::ScalarType dt = parse_compute_dtype(a.get("--dtype"));
    if (dt == at::ScalarType::Undefined)
        dt = dev.is_cpu() ? at::kFloat : map.get("gdino.model.level_embed").scalar_type();
    gdino::OVGroundingDinoForObjectDetection model(cfg, map.view("gdino."), llm::Loader{dev, dt, false});
    const double load_s = since(t0);

    at::manual_seed(0);
    at::Tensor px = at::zeros({1, 3, PH, PW});
    px.narrow(2, 0, H).narrow(3, 0, W).copy_(at::randn({1, 3, H, W}));
    at::Tensor pmask = at::zeros({1, PH, PW}, at::kBool);
    pmask.narrow(1, 0, H).narrow(2, 0, W).fill_(true);
    at::Tensor tq = at::randn({1, T, cfg.num_embs, cfg.l_hidden_size});
    at::Tensor tmask = at::ones({1, T}, at::kBool);
    gdino::ForwardOptions opt;
    opt.masks = a.on("--masks");

    std::unique_ptr<Baseline> base;
    json base_info;
    if (a.has("--baseline")) {
        VLLM_CHECK(!a.has("--model"), "--baseline compares against random weights: leave out -m");
        VLLM_CHECK(dev.is_cpu() && dt == at::kFloat, "--baseline runs on the CPU in fp32: use --device cpu --dtype f32");
        const std::string cmd = a.get("--baseline") + " --serve --size " + std::to_string(H) + "x" + std::to_string(W) +
                                " --text " + std::to_string(T) + " -t " + std::to_string(at::get_num_threads());
        if (!a.on("--json")) std::fprintf(stderr, "starting the baseline: %s\n", cmd.c_str());
        base = std::make_unique<Baseline>(cmd);
        base_info = base->read();  // built and warmed up
    }

    // warm-up (first touch of the weights, allocator, oneDNN kernels), then reps alternating with the baseline
    auto run_ours = [&](double & bb, double & rest) {
        auto t = bench_clock::now();
        std::vector<at::Tensor> maps = model.backbone(px);
        sync(dev);
        bb = since(t);
        t = bench_clock::now();
        gdino::GroundingDinoOutput out = model.forward_features(maps, pmask, tq, tmask, opt);
        sync(dev);
        rest = since(t);
        return out;
    };
    double bb = 0, rest = 0;
    gdino::GroundingDinoOutput out = run_ours(bb, rest);
    const bool finite = at::isfinite(out.boxes.back()).all().item<bool>();
    std::vector<double> ours, backbone_s, transformer_s, theirs;
    for (int r = 0; r < reps; ++r) {
        run_ours(bb, rest);
        ours.push_back(bb + rest);
        backbone_s.push_back(bb);
        transformer_s.push_back(rest);
        if (base) theirs.push_back(base->run());
    }
    auto best = [](const std::vector<double> & v) { return v.empty() ? 0.0 : *std::min_element(v.begin(), v.end()); };
    const double b_ours = best(ours), b_theirs = best(theirs);
    json j = {{"bench", "gdino"},
              {"model", a.has("--model") ? a.get("--model") : "random (released gdino_config shapes)"},
              {"device", dev.str()},
              {"dtype", c10::toString(dt)},
              {"threads", at::get_num_threads()},
              {"size", {H, W}},
              {"padded", {PH, PW}},
              {"text", T},
              {"queries", cfg.num_queries},
              {"masks", opt.masks},
              {"load_s", load_s},
              {"ours_s", b_ours},
              {"ours_backbone_s", best(backbone_s)},
              {"ours_transformer_s", best(transformer_s)},
              {"ours_runs", ours},
              {"finite_boxes", finite}};
    if (base) {
        j["transformers_s"] = b_theirs;
        j["transformers_runs"] = theirs;
        j["speedup"] = b_theirs / b_ours;
        j["baseline"] = base_info;
    }
    if (a.on("--json")) {
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("gdino: %s | %lldx%lld (padded %lldx%lld), %lld text groups, %lld queries%s | %s %s | %d threads | "
                "load %.2f s\n",
                j["model"].get<std::string>().c_str(), (long long)H, (long long)W, (long long)PH, (long long)PW,
                (long long)T, (long long)cfg.num_queries, opt.masks ? ", masks" : "", dev.str().c_str(),
                c10::toString(dt), at::get_num_threads(), load_s);
    std::printf("| %-28s | %10s |\n", "test", "best s");
    std::printf("| %-28s | %10s |\n", "----------------------------", "----------");
    std::printf("| %-28s | %10.3f |\n", "ours: total", b_ours);
    std::printf("| %-28s | %10.3f |\n", "ours: Swin backbone", best(backbone_s));
    std::printf("| %-28s | %10.3f |\n", "ours: encoder, decoder, heads", best(transformer_s));
    if (base) {
        std::printf("| %-28s | %10.3f |\n", "transformers (PyTorch eager)", b_theirs);
        std::printf("speedup: %.2fx over transformers %s (torch %s)\n", b_theirs / b_ours,
                    base_info.value("transformers", "?").c_str(), base_info.value("torch", "?").c_str());
    }
    if (!finite) std::printf("warning: non-finite boxes\n");
    return 0;
}

}  // namespace visionllm::cli
