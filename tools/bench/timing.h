// Wall-clock helpers shared by the benchmarks.
#pragma once

#include <ATen/ATen.h>

#include <chrono>

namespace visionllm::cli {

using bench_clock = std::chrono::steady_clock;

inline double since(bench_clock::time_point t0) {
    return std::chrono::duration<double>(bench_clock::now() - t0).count();
}

// waits for the device's queued work (a copy back to the host), so timings cover it
inline void sync(c10::Device d) {
    if (d.is_cuda()) at::zeros({1}, at::TensorOptions().device(d)).cpu();
}

}  // namespace visionllm::cli
