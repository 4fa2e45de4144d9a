// Memory read bandwidth, measured the way the benchmarks compare against it:
// a read-only pass over a buffer larger than the caches.
#pragma once

#include <cstddef>
#include <cstdint>

namespace visionllm {

// sums `n` bytes as 64-bit words using `threads` threads; the result keeps the reads alive
uint64_t read_all(const void * data, size_t n, int threads);

struct BandwidthResult {
    double best_gbps = 0;  // best of the repetitions, GB/s (1e9 bytes)
    size_t bytes = 0;
    int threads = 0;
};
BandwidthResult measure_read_bandwidth(size_t bytes, int threads, int reps);

}  // namespace visionllm
