// visionllm-bench: llama-bench-style throughput tables. Every figure is set
// against a baseline measured in the same run (here: the machine's read bandwidth).
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/args.h"
#include "common/subcommands.h"
#include "core/membw.h"
#include "visionllm/checkpoint.h"
#include "visionllm/error.h"
#include "visionllm/version.h"

namespace visionllm::cli {
int bench_llm(int argc, char ** argv);
int bench_vision(int argc, char ** argv);
int bench_gdino(int argc, char ** argv);
int bench_cocoeval(int argc, char ** argv);
}

namespace {

using visionllm::cli::Args;
using json = nlohmann::ordered_json;

int default_threads() { return int(std::max(1u, std::thread::hardware_concurrency())); }

int bench_membw(int argc, char ** argv) {
    Args a("visionllm-bench membw [--size-mib N] [-t N] [-r N] [--json]",
           "Measures the read bandwidth of this machine: the bound for memory-bound decode.");
    a.add("--size-mib", "N", "buffer size in MiB", "1024");
    a.add("-t,--threads", "N", "threads", std::to_string(default_threads()));
    a.add("-r,--reps", "N", "repetitions (best is kept)", "5");
    a.add_switch("--json", "print JSON");
    if (!a.parse(argc, argv)) return 0;
    const long long mib = a.get_int("--size-mib");
    if (mib < 1) visionllm::fail("--size-mib must be at least 1");
    auto r = visionllm::measure_read_bandwidth(size_t(mib) << 20, int(a.get_int("--threads")), int(a.get_int("--reps")));
    if (a.on("--json")) {
        std::printf("%s\n", json({{"bench", "membw"}, {"bytes", r.bytes}, {"threads", r.threads}, {"read_gbps", r.best_gbps}})
                                .dump(2)
                                .c_str());
    } else {
        std::printf("| %-10s | %8s | %7s | %12s |\n", "test", "size", "threads", "read GB/s");
        std::printf("| %-10s | %8s | %7s | %12s |\n", "----------", "--------", "-------", "------------");
        std::printf("| %-10s | %5lld MiB | %7d | %12.2f |\n", "read", mib, r.threads, r.best_gbps);
    }
    return 0;
}

int bench_load(int argc, char ** argv) {
    Args a("visionllm-bench load -m DIR [-t N] [--json]",
           "Opens a checkpoint (memory-mapped) and reads every tensor byte twice: the first pass\n"
           "includes page faults and any disk reads, the second reads warm pages. Both are set\n"
           "against the read bandwidth measured in the same run.");
    a.add("-m,--model", "DIR", "model directory or checkpoint file");
    a.add("-t,--threads", "N", "threads", std::to_string(default_threads()));
    a.add_switch("--json", "print JSON");
    if (!a.parse(argc, argv)) return 0;
    const int threads = int(a.get_int("--threads"));
    auto t0 = std::chrono::steady_clock::now();
    visionllm::WeightMap w = visionllm::WeightMap::open(a.require("--model"));
    const double open_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t bytes = w.total_bytes();
    double pass_gbps[2] = {0, 0};
    volatile uint64_t sink = 0;
    for (int pass = 0; pass < 2; ++pass) {
        auto p0 = std::chrono::steady_clock::now();
        for (const auto & name : w.names()) {
            at::Tensor t = w.get(name);
            sink = sink + visionllm::read_all(t.data_ptr(), size_t(t.nbytes()), threads);
        }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - p0).count();
        pass_gbps[pass] = double(bytes) / s / 1e9;
    }
    auto bw = visionllm::measure_read_bandwidth(size_t(512) << 20, threads, 3);
    if (a.on("--json")) {
        std::printf("%s\n", json({{"bench", "load"},
                                  {"model", w.source()},
                                  {"tensors", w.size()},
                                  {"bytes", bytes},
                                  {"open_s", open_s},
                                  {"first_pass_gbps", pass_gbps[0]},
                                  {"warm_pass_gbps", pass_gbps[1]},
                                  {"read_gbps", bw.best_gbps}})
                                .dump(2)
                                .c_str());
    } else {
        std::printf("model: %s (%zu tensors, %.3f GB, opened in %.3f s)\n", w.source().c_str(), w.size(),
                    double(bytes) / 1e9, open_s);
        std::printf("| %-18s | %10s | %16s |\n", "test", "GB/s", "of read bandwidth");
        std::printf("| %-18s | %10s | %16s |\n", "------------------", "----------", "----------------");
        std::printf("| %-18s | %10.2f | %15.0f%% |\n", "first pass (mmap)", pass_gbps[0], 100 * pass_gbps[0] / bw.best_gbps);
        std::printf("| %-18s | %10.2f | %15.0f%% |\n", "warm pass", pass_gbps[1], 100 * pass_gbps[1] / bw.best_gbps);
        std::printf("| %-18s | %10.2f | %15s |\n", "read bandwidth", bw.best_gbps, "100%");
    }
    return 0;
}

}  // namespace

int main(int argc, char ** argv) {
    return visionllm::cli::run_subcommands(
        "visionllm-bench", "benchmarks, each set against a baseline measured in the same run",
        {
            {"membw", "read bandwidth of this machine (the decode bound)", bench_membw},
            {"load", "checkpoint mapping and first-touch throughput", bench_load},
            {"llm", "language model prefill and decode speed, against the read bandwidth and torch's matvec",
             visionllm::cli::bench_llm},
            {"vision", "CLIP vision tower latency on 1 and 5 tiles, against PyTorch eager", visionllm::cli::bench_vision},
            {"gdino", "Grounding DINO latency on an 800x1333 image, against transformers' GroundingDino",
             visionllm::cli::bench_gdino},
            {"cocoeval", "COCO bbox scoring of a val2017-sized synthetic set, against pycocotools",
             visionllm::cli::bench_cocoeval},
        },
        argc, argv);
}
