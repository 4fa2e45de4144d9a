#include "core/membw.h"

#include <immintrin.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

namespace visionllm {

namespace {
uint64_t sum_words_scalar(const uint64_t * p, size_t n) {
    // eight independent lanes so the loads overlap
    uint64_t a[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int k = 0; k < 8; ++k) a[k] += p[i + size_t(k)];
    }
    for (; i < n; ++i) a[0] += p[i];
    uint64_t s = 0;
    for (int k = 0; k < 8; ++k) s += a[k];
    return s;
}

// the same sum with 512-bit loads, four independent accumulators
__attribute__((target("avx512f"))) uint64_t sum_words_avx512(const uint64_t * p, size_t n) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_add_epi64(a0, _mm512_loadu_si512(p + i));
        a1 = _mm512_add_epi64(a1, _mm512_loadu_si512(p + i + 8));
        a2 = _mm512_add_epi64(a2, _mm512_loadu_si512(p + i + 16));
        a3 = _mm512_add_epi64(a3, _mm512_loadu_si512(p + i + 24));
    }
    uint64_t s = uint64_t(_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3))));
    return s + sum_words_scalar(p + i, n - i);
}

// 256-bit loads for CPUs without AVX-512 (the GEMV's AVX2 path reads the same way)
__attribute__((target("avx2"))) uint64_t sum_words_avx2(const uint64_t * p, size_t n) {
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        a0 = _mm256_add_epi64(a0, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + i)));
        a1 = _mm256_add_epi64(a1, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + i + 4)));
        a2 = _mm256_add_epi64(a2, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + i + 8)));
        a3 = _mm256_add_epi64(a3, _mm256_loadu_si256(reinterpret_cast<const __m256i *>(p + i + 12)));
    }
    alignas(32) uint64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i *>(lanes),
                       _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + sum_words_scalar(p + i, n - i);
}

uint64_t sum_words(const uint64_t * p, size_t n) {
    static const int isa = __builtin_cpu_supports("avx512f") ? 2 : (__builtin_cpu_supports("avx2") ? 1 : 0);
    return isa == 2 ? sum_words_avx512(p, n) : (isa == 1 ? sum_words_avx2(p, n) : sum_words_scalar(p, n));
}
}  // namespace

uint64_t read_all(const void * data, size_t n, int threads) {
    const auto * bytes = static_cast<const uint8_t *>(data);
    const size_t words = n / 8;
    uint64_t tail = 0;
    for (size_t i = words * 8; i < n; ++i) tail += bytes[i];
    if (threads <= 1 || words < (1u << 16)) {
        uint64_t s = 0;
        if (reinterpret_cast<uintptr_t>(data) % 8 == 0) return sum_words(static_cast<const uint64_t *>(data), words) + tail;
        for (size_t i = 0; i < words; ++i) {
            uint64_t w;
            std::memcpy(&w, bytes + i * 8, 8);
            s += w;
        }
        return s + tail;
    }
    std::vector<uint64_t> part(size_t(threads), 0);
    std::vector<std::thread> pool;
    const size_t per = (words + size_t(threads) - 1) / size_t(threads);
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            size_t b = size_t(t) * per, e = std::min(words, b + per);
            if (b < e) part[size_t(t)] = read_all(bytes + b * 8, (e - b) * 8, 1);
        });
    }
    for (auto & th : pool) th.join();
    uint64_t s = tail;
    for (uint64_t v : part) s += v;
    return s;
}

BandwidthResult measure_read_bandwidth(size_t bytes, int threads, int reps) {
    BandwidthResult r;
    r.bytes = bytes;
    r.threads = threads;
    std::unique_ptr<uint64_t[]> buf(new uint64_t[bytes / 8]);
    for (size_t i = 0; i < bytes / 8; ++i) buf[i] = i * 0x9E3779B97F4A7C15ull;  // touch every page
    volatile uint64_t sink = 0;
    for (int k = 0; k < reps; ++k) {
        auto t0 = std::chrono::steady_clock::now();
        sink = sink + read_all(buf.get(), bytes, threads);
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        double gbps = double(bytes) / s / 1e9;
        if (gbps > r.best_gbps) r.best_gbps = gbps;
    }
    return r;
}

}  // namespace visionllm
