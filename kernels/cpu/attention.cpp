// Attention on the CPU. Grouped-query heads need no repeat of k/v: the G*Tq
// query rows of one kv head (head h = kv head h/G, member h%G) are served
// together. Few rows (decode): a hand loop per (batch, kv head) that reads K
// and V once in their own dtype, widening one row at a time to fp32 -- going
// through ATen would first copy the whole bf16 cache to fp32. f32, and many rows
// (prefill): ATen's CPU flash attention when its mask convention is ours (no
// grouped heads; bidirectional, or causal with Tq == Tk), else ATen's fp32 GEMMs,
// queries in chunks that bound the score matrix, a causal chunk multiplying only
// the keys its last query can see.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels {

void check_attention_args(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal,
                          const char * op) {
    VLLM_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, op, ": q, k, v must be [B, H, T, D], got ", q.sizes(),
               ", ", k.sizes(), ", ", v.sizes());
    VLLM_CHECK(k.sizes() == v.sizes(), op, ": k ", k.sizes(), " and v ", v.sizes(), " differ in shape");
    const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3);
    const int64_t Hkv = k.size(1), Tk = k.size(2);
    VLLM_CHECK(k.size(0) == B && k.size(3) == D, op, ": q ", q.sizes(), " and k/v ", k.sizes(),
               " differ in batch or head dim");
    VLLM_CHECK(Hkv > 0 && H % Hkv == 0, op, ": ", H, " query heads are not a multiple of ", Hkv, " kv heads");
    VLLM_CHECK(q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type(), op, ": q, k, v dtypes ",
               q.scalar_type(), ", ", k.scalar_type(), ", ", v.scalar_type(), " differ");
    const auto dt = q.scalar_type();
    VLLM_CHECK(dt == at::kFloat || dt == at::kHalf || dt == at::kBFloat16, op, ": unsupported dtype ", dt,
               " (f32, f16, bf16)");
    VLLM_CHECK(D >= 1 && D <= 256, op, ": head dim ", D, " is out of range (1..256)");
    VLLM_CHECK(!causal || Tq <= Tk, op, ": causal attention with ", Tq, " queries but only ", Tk, " keys");
    VLLM_CHECK(Tk > 0 || Tq == 0, op, ": no keys (Tk = 0) for ", Tq, " queries");
    VLLM_CHECK((k.stride(3) == 1 && v.stride(3) == 1) || D == 1, op,
               ": the last dim of k and v must be contiguous, strides ", k.strides(), " and ", v.strides());
}

namespace cpu {

namespace {

constexpr int64_t k_max_loop_rows = 16;  // query rows per kv head up to which the hand loop wins

// eight independent partial sums so that the compiler can keep them in vector registers
inline float dot(const float * a, const float * b, int64_t n) {
    float acc[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
    int64_t d = 0;
    for (; d + 8 <= n; d += 8)
        for (int e = 0; e < 8; ++e) acc[e] += a[d + e] * b[d + e];
    float s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (; d < n; ++d) s += a[d] * b[d];
    return s;
}

template <class T>
void attention_loop(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, at::Tensor & out, bool causal,
                    float scale) {
    const int64_t H = q.size(1), Tq = q.size(2), D = q.size(3);
    const int64_t Hkv = k.size(1), Tk = k.size(2), G = H / Hkv, R = G * Tq;
    const T * qp = q.data_ptr<T>();
    const T * kp = k.data_ptr<T>();
    const T * vp = v.data_ptr<T>();
    T * op = out.data_ptr<T>();
    at::parallel_for(0, q.size(0) * Hkv, 1, [&](int64_t t0, int64_t t1) {
        std::vector<float> qf(R * D), of(R * D), s(R * Tk), row(D);
        std::vector<int64_t> nvis(R);
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / Hkv, kvh = t % Hkv;
            // row r = g*Tq + i is query i of head kvh*G + g
            for (int64_t r = 0; r < R; ++r) {
                const int64_t h = kvh * G + r / Tq, i = r % Tq;
                const T * src = qp + b * q.stride(0) + h * q.stride(1) + i * q.stride(2);
                for (int64_t d = 0; d < D; ++d) qf[r * D + d] = float(src[d]) * scale;
                nvis[r] = causal ? Tk - Tq + i + 1 : Tk;
            }
            const T * kb = kp + b * k.stride(0) + kvh * k.stride(1);
            for (int64_t j = 0; j < Tk; ++j) {
                const T * src = kb + j * k.stride(2);
                for (int64_t d = 0; d < D; ++d) row[d] = float(src[d]);
                for (int64_t r = 0; r < R; ++r)
                    if (j < nvis[r]) s[r * Tk + j] = dot(&qf[r * D], row.data(), D);
            }
            for (int64_t r = 0; r < R; ++r) {
                float * sr = &s[r * Tk];
                const float mx = *std::max_element(sr, sr + nvis[r]);
                float sum = 0.f;
                for (int64_t j = 0; j < nvis[r]; ++j) sum += (sr[j] = std::exp(sr[j] - mx));
                const float inv = 1.f / sum;
                for (int64_t j = 0; j < nvis[r]; ++j) sr[j] *= inv;
            }
            std::fill(of.begin(), of.end(), 0.f);
            const T * vb = vp + b * v.stride(0) + kvh * v.stride(1);
            for (int64_t j = 0; j < Tk; ++j) {
                const T * src = vb + j * v.stride(2);
                for (int64_t d = 0; d < D; ++d) row[d] = float(src[d]);
                for (int64_t r = 0; r < R; ++r) {
                    if (j >= nvis[r]) continue;
                    const float p = s[r * Tk + j];
                    float * o = &of[r * D];
                    for (int64_t d = 0; d < D; ++d) o[d] += p * row[d];
                }
            }
            for (int64_t r = 0; r < R; ++r) {
                const int64_t h = kvh * G + r / Tq, i = r % Tq;
                T * dst = op + ((b * H + h) * Tq + i) * D;
                for (int64_t d = 0; d < D; ++d) dst[d] = T(of[r * D + d]);
            }
        }
    });
}

}  // namespace

at::Tensor attention(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal, double scale) {
    check_attention_args(q, k, v, causal, "attention");
    const int64_t B = q.size(0), H = q.size(1), Tq = q.size(2), D = q.size(3);
    const int64_t Hkv = k.size(1), Tk = k.size(2), G = H / Hkv;
    at::Tensor out = at::empty({B, H, Tq, D}, q.options().memory_format(at::MemoryFormat::Contiguous));
    if (out.numel() == 0) return out;
    // f32 needs no widening copy, and ATen's GEMV measured no slower there
    if (G * Tq <= k_max_loop_rows && q.scalar_type() != at::kFloat) {
        if (q.scalar_type() == at::kHalf)
            attention_loop<at::Half>(q, k, v, out, causal, float(scale));
        else
            attention_loop<at::BFloat16>(q, k, v, out, causal, float(scale));
        return out;
    }
    // no copies for f32 inputs: k/v stay views of the cache, which matmul reads through their strides
    at::Tensor kf = k.to(at::kFloat), vf = v.to(at::kFloat);
    if (G == 1 && (!causal || Tq == Tk)) {
        // ATen's CPU flash attention (tiled, online softmax, no score matrix) where its mask convention is
        // ours: bidirectional (the vision tower), or causal with as many queries as keys (a first prefill).
        // It measured 1.7x the chunked GEMM path below on CLIP-L's 16 x 577 x 64 heads.
        out.copy_(at::scaled_dot_product_attention(q.to(at::kFloat), kf, vf, {}, 0.0, causal, scale));
        return out;
    }
    at::Tensor qf = q.to(at::kFloat).reshape({B, Hkv, G, Tq, D});
    const int64_t budget = int64_t(1) << 24;  // fp32 scores per chunk (64 MiB)
    const int64_t chunk = std::max<int64_t>(1, std::min(Tq, budget / (B * H * Tk)));
    for (int64_t i0 = 0; i0 < Tq; i0 += chunk) {
        const int64_t i1 = std::min(Tq, i0 + chunk), c = i1 - i0;
        const int64_t kend = causal ? Tk - Tq + i1 : Tk;
        at::Tensor qc = qf.slice(3, i0, i1).reshape({B, Hkv, G * c, D});
        at::Tensor s = at::matmul(qc, kf.slice(2, 0, kend).transpose(2, 3));  // [B, Hkv, G*c, kend]
        s.mul_(scale);
        if (causal) {
            // query i is at absolute position Tk - Tq + i and sees keys up to it
            at::Tensor qpos = at::arange(Tk - Tq + i0, Tk - Tq + i1, at::kLong).unsqueeze(1);
            at::Tensor kpos = at::arange(kend, at::kLong).unsqueeze(0);
            s.view({B, Hkv, G, c, kend}).masked_fill_(kpos > qpos, -std::numeric_limits<float>::infinity());
        }
        at::Tensor o = at::matmul(at::softmax(s, -1), vf.slice(2, 0, kend));  // [B, Hkv, G*c, D]
        out.slice(2, i0, i1).copy_(o.view({B, H, c, D}));
    }
    return out;
}

}  // namespace cpu
}  // namespace visionllm::kernels
