// Flash-style attention for many queries, without tensor cores. One block of
// 4 warps per (b, h, tile of 32 queries); Q stays in shared memory while
// 32-key tiles of K and V stream through it, so memory is O(T*D), never the
// T x T score matrix. Each warp owns 8 query rows for the whole kernel: lane j
// scores key j of the tile against them, the row max/sum of the online softmax
// are warp reductions, and the same warp rescales and accumulates its rows'
// outputs (lane = 4 consecutive dims per 128), so the only block-wide syncs
// guard the K/V tiles. All arithmetic is fp32.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>

#include "kernels/cuda/convert.cuh"
#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels::cuda {

namespace {

constexpr int k_bq = 32;                  // queries per block
constexpr int k_bk = 32;                  // keys per tile: one per lane
constexpr int k_warps = 4;
constexpr int k_threads = 32 * k_warps;
constexpr int k_rows = k_bq / k_warps;    // query rows per warp

template <class T>
struct Args {
    const T * q;
    const T * k;
    const T * v;
    T * o;                      // [B, H, Tq, D] contiguous
    int64_t qs0, qs1, qs2;      // element strides on B, H, T (the last dim is contiguous)
    int64_t ks0, ks1, ks2;
    int64_t vs0, vs1, vs2;
    int H, G, Tq, Tk, D;        // G = H / Hkv
    int q_tiles;
    float scale;
    bool causal;
};

__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <int DMAX>
constexpr size_t smem_bytes() {
    // Q [bq][DMAX], K [bk][DMAX + 4] (padded: lanes read down a column of keys), V [bk][DMAX]
    return sizeof(float) * (size_t(k_bq) * DMAX + size_t(k_bk) * (DMAX + 4) + size_t(k_bk) * DMAX);
}

template <class T, int DMAX>
__global__ void __launch_bounds__(k_threads) prefill_kernel(Args<T> a) {
    static_assert(DMAX % 128 == 0, "each lane owns float4 column groups of 128");
    constexpr int kstride = DMAX + 4;
    constexpr int chunks = DMAX / 128;  // float4 output groups per lane
    extern __shared__ float4 smem4[];   // float4 for 16-byte alignment
    float * qs = reinterpret_cast<float *>(smem4);
    float * ks = qs + k_bq * DMAX;
    float * vs = ks + k_bk * kstride;

    // heavy (late) causal query tiles first: blocks are scheduled roughly in index order
    const int qt = a.q_tiles - 1 - int(blockIdx.x % unsigned(a.q_tiles));
    const int bh = int(blockIdx.x / unsigned(a.q_tiles));
    const int h = bh % a.H, b = bh / a.H, kvh = h / a.G;
    const int q0 = qt * k_bq;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const T * qb = a.q + b * a.qs0 + h * a.qs1;
    const T * kb = a.k + b * a.ks0 + kvh * a.ks1;
    const T * vb = a.v + b * a.vs0 + kvh * a.vs1;

    // Q tile, zero past D and past Tq so padded dims add nothing to the dot products
    for (int idx = tid; idx < k_bq * DMAX; idx += k_threads) {
        const int r = idx / DMAX, d = idx % DMAX, i = q0 + r;
        qs[idx] = (i < a.Tq && d < a.D) ? to_f(qb[i * a.qs2 + d]) : 0.f;
    }

    const int d4 = (a.D + 3) / 4;  // float4 steps covering D
    const int shift = a.Tk - a.Tq; // query i sits at absolute position shift + i
    // keys past the last query's position are masked for the whole tile
    const int last_q = min(q0 + k_bq, a.Tq) - 1;
    const int kend = a.causal ? min(a.Tk, shift + last_q + 1) : a.Tk;

    float m_run[k_rows], l_run[k_rows];
    float4 acc[k_rows][chunks];
#pragma unroll
    for (int m = 0; m < k_rows; ++m) {
        m_run[m] = -INFINITY;
        l_run[m] = 0.f;
#pragma unroll
        for (int c = 0; c < chunks; ++c) acc[m][c] = make_float4(0.f, 0.f, 0.f, 0.f);
    }

    for (int j0 = 0; j0 < kend; j0 += k_bk) {
        __syncthreads();  // the previous tile's K/V are no longer read (and, first time, Q is written)
        for (int idx = tid; idx < k_bk * DMAX; idx += k_threads) {
            const int jj = idx / DMAX, d = idx % DMAX, j = j0 + jj;
            const bool ok = j < a.Tk && d < a.D;
            ks[jj * kstride + d] = ok ? to_f(kb[j * a.ks2 + d]) : 0.f;
            vs[jj * DMAX + d] = ok ? to_f(vb[j * a.vs2 + d]) : 0.f;
        }
        __syncthreads();

        // scores: lane = key j0 + lane against this warp's rows
        float s[k_rows];
#pragma unroll
        for (int m = 0; m < k_rows; ++m) s[m] = 0.f;
        const float4 * krow = reinterpret_cast<const float4 *>(ks + lane * kstride);
        for (int e = 0; e < d4; ++e) {
            const float4 kv = krow[e];
#pragma unroll
            for (int m = 0; m < k_rows; ++m) {
                const float4 qv = reinterpret_cast<const float4 *>(qs + (warp * k_rows + m) * DMAX)[e];
                s[m] += qv.x * kv.x + qv.y * kv.y + qv.z * kv.z + qv.w * kv.w;
            }
        }

        // online softmax per row; rows and their statistics never leave this warp
        const int j = j0 + lane;
#pragma unroll
        for (int m = 0; m < k_rows; ++m) {
            const int i = q0 + warp * k_rows + m;
            const bool visible = i < a.Tq && j < a.Tk && (!a.causal || j <= shift + i);
            const float sv = visible ? s[m] * a.scale : -INFINITY;
            const float m_new = fmaxf(m_run[m], warp_max(sv));
            // m_new is -inf only while every key so far is masked for this row: keep it all zero
            const float p = (sv == -INFINITY) ? 0.f : expf(sv - m_new);
            const float alpha = (m_run[m] == -INFINITY) ? 0.f : expf(m_run[m] - m_new);
            l_run[m] = l_run[m] * alpha + warp_sum(p);
            m_run[m] = m_new;
            s[m] = p;
#pragma unroll
            for (int c = 0; c < chunks; ++c) {
                acc[m][c].x *= alpha;
                acc[m][c].y *= alpha;
                acc[m][c].z *= alpha;
                acc[m][c].w *= alpha;
            }
        }

        // acc[m] += sum_j p[m][j] * V[j]; p[m][j] lives in lane j
        const int jn = min(k_bk, kend - j0);  // keys of this tile any row can see
        for (int jj = 0; jj < jn; ++jj) {
            float4 vv[chunks];
#pragma unroll
            for (int c = 0; c < chunks; ++c) vv[c] = reinterpret_cast<const float4 *>(vs + jj * DMAX)[c * 32 + lane];
#pragma unroll
            for (int m = 0; m < k_rows; ++m) {
                const float p = __shfl_sync(0xffffffffu, s[m], jj);
#pragma unroll
                for (int c = 0; c < chunks; ++c) {
                    acc[m][c].x += p * vv[c].x;
                    acc[m][c].y += p * vv[c].y;
                    acc[m][c].z += p * vv[c].z;
                    acc[m][c].w += p * vv[c].w;
                }
            }
        }
    }

#pragma unroll
    for (int m = 0; m < k_rows; ++m) {
        const int i = q0 + warp * k_rows + m;
        if (i >= a.Tq) continue;
        const float inv = l_run[m] > 0.f ? 1.f / l_run[m] : 0.f;
        T * orow = a.o + ((int64_t(b) * a.H + h) * a.Tq + i) * a.D;
#pragma unroll
        for (int c = 0; c < chunks; ++c) {
            const int d = c * 128 + lane * 4;
            const float vals[4] = {acc[m][c].x, acc[m][c].y, acc[m][c].z, acc[m][c].w};
#pragma unroll
            for (int e = 0; e < 4; ++e)
                if (d + e < a.D) orow[d + e] = from_f<T>(vals[e] * inv);
        }
    }
}

template <class T, int DMAX>
void launch_dmax(const Args<T> & a, int64_t blocks, const at::Device & dev) {
    constexpr size_t smem = smem_bytes<DMAX>();
    // over 48 KiB of dynamic shared memory must be asked for per kernel
    cudaError_t e = cudaFuncSetAttribute(prefill_kernel<T, DMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(smem));
    if (e != cudaSuccess)
        fail("attention_prefill: cannot get ", smem, " bytes of shared memory: ", cudaGetErrorString(e));
    auto stream = c10::cuda::getCurrentCUDAStream(dev.index());
    prefill_kernel<T, DMAX><<<unsigned(blocks), k_threads, smem, stream>>>(a);
    e = cudaGetLastError();
    if (e != cudaSuccess) fail("attention_prefill: CUDA launch failed: ", cudaGetErrorString(e));
}

template <class T>
void launch(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, at::Tensor & o, bool causal,
            double scale) {
    Args<T> a;
    a.q = reinterpret_cast<const T *>(q.data_ptr());
    a.k = reinterpret_cast<const T *>(k.data_ptr());
    a.v = reinterpret_cast<const T *>(v.data_ptr());
    a.o = reinterpret_cast<T *>(o.data_ptr());
    a.qs0 = q.stride(0), a.qs1 = q.stride(1), a.qs2 = q.stride(2);
    a.ks0 = k.stride(0), a.ks1 = k.stride(1), a.ks2 = k.stride(2);
    a.vs0 = v.stride(0), a.vs1 = v.stride(1), a.vs2 = v.stride(2);
    a.H = int(q.size(1)), a.G = int(q.size(1) / k.size(1)), a.Tq = int(q.size(2)), a.Tk = int(k.size(2));
    a.D = int(q.size(3));
    a.q_tiles = (a.Tq + k_bq - 1) / k_bq;
    a.scale = float(scale);
    a.causal = causal;
    const int64_t blocks = q.size(0) * q.size(1) * a.q_tiles;
    VLLM_CHECK(blocks <= int64_t(INT32_MAX), "attention_prefill: too many (batch, head, query tile) blocks: ", blocks);
    if (a.D <= 128)
        launch_dmax<T, 128>(a, blocks, q.device());
    else
        launch_dmax<T, 256>(a, blocks, q.device());
}

}  // namespace

at::Tensor attention_prefill(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal,
                             double scale) {
    check_attention_args(q, k, v, causal, "attention_prefill");
    VLLM_CHECK(q.is_cuda() && k.device() == q.device() && v.device() == q.device(),
               "attention_prefill: q, k, v must be on one CUDA device");
    VLLM_CHECK(q.size(2) < (int64_t(1) << 30) && k.size(2) < (int64_t(1) << 30),
               "attention_prefill: sequence too long");
    c10::cuda::CUDAGuard guard(q.device());
    // q's last dim must be contiguous too; k/v were checked
    at::Tensor qc = q.stride(3) == 1 ? q : q.contiguous();
    at::Tensor o = at::empty({q.size(0), q.size(1), q.size(2), q.size(3)},
                             q.options().memory_format(at::MemoryFormat::Contiguous));
    if (o.numel() == 0) return o;
    switch (q.scalar_type()) {
        case at::kFloat: launch<float>(qc, k, v, o, causal, scale); break;
        case at::kHalf: launch<__half>(qc, k, v, o, causal, scale); break;
        case at::kBFloat16: launch<__nv_bfloat16>(qc, k, v, o, causal, scale); break;
        default: fail("attention_prefill: unsupported dtype ", q.scalar_type(), " (f32, f16, bf16)");
    }
    return o;
}

}  // namespace visionllm::kernels::cuda
