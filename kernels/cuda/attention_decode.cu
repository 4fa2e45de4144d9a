// Attention for a few queries (decode): the work is reading K and V once, so
// the keys are split across blocks (split-K) to occupy every SM, and across the
// 4 warps of a block; a warp walks its keys one at a time with the online
// softmax, lanes holding DMAX/32 consecutive dims of q, v and the output.
// Warps merge through shared memory; with more than one split each block
// writes an unnormalised partial (acc, max, sum) and a second kernel merges
// them. Also the cuda::attention entry, which picks decode or prefill.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/cuda/convert.cuh"
#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels::cuda {

namespace {

constexpr int k_warps = 4;
constexpr int k_threads = 32 * k_warps;
constexpr int k_max_splits = 256;
constexpr int k_min_keys_per_split = 64;  // below this the merge costs more than the extra parallelism gives

template <class T>
struct Args {
    const T * q;
    const T * k;
    const T * v;
    T * o;                  // [B, H, Tq, D] contiguous (written when splits == 1)
    float * part_o;         // [B*H*Tq, splits, D] unnormalised partial outputs (splits > 1)
    float * part_ml;        // [B*H*Tq, splits, 2] partial max and sum
    int64_t qs0, qs1, qs2;  // element strides on B, H, T (the last dim is contiguous)
    int64_t ks0, ks1, ks2;
    int64_t vs0, vs1, vs2;
    int H, G, Tq, Tk, D;    // G = H / Hkv
    int splits, chunk;      // split s takes keys [s*chunk, (s+1)*chunk)
    float scale;
    bool causal;
    bool vec;               // D == DMAX and every K/V row aligned for one vector load per lane
};

template <class T, int N>
struct alignas(sizeof(T) * N) Pack {
    T x[N];
};

// N consecutive elements of a row into fp32: one vector load when allowed, else guarded scalars
template <class T, int N>
__device__ __forceinline__ void load_row(const T * p, int d0, int D, bool vec, float (&out)[N]) {
    if (vec) {
        const Pack<T, N> pk = *reinterpret_cast<const Pack<T, N> *>(p + d0);
#pragma unroll
        for (int e = 0; e < N; ++e) out[e] = to_f(pk.x[e]);
    } else {
#pragma unroll
        for (int e = 0; e < N; ++e) out[e] = d0 + e < D ? to_f(p[d0 + e]) : 0.f;
    }
}

template <class T, int DMAX>
__global__ void __launch_bounds__(k_threads) decode_kernel(Args<T> a) {
    constexpr int N = DMAX / 32;  // dims per lane
    __shared__ float w_acc[k_warps][DMAX];
    __shared__ float w_m[k_warps], w_l[k_warps];

    const int split = int(blockIdx.x % unsigned(a.splits));
    const int64_t row = blockIdx.x / unsigned(a.splits);  // (b, h, i) flattened like the output
    const int i = int(row % a.Tq), h = int((row / a.Tq) % a.H), b = int(row / (int64_t(a.Tq) * a.H));
    const int kvh = h / a.G;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, d0 = lane * N;

    // keys this query sees, intersected with this split's range
    const int visible = a.causal ? a.Tk - a.Tq + i + 1 : a.Tk;
    const int j_begin = split * a.chunk, j_end = min(visible, j_begin + a.chunk);

    float q[N];
    {
        const T * qp = a.q + b * a.qs0 + h * a.qs1 + i * a.qs2;
#pragma unroll
        for (int e = 0; e < N; ++e) q[e] = d0 + e < a.D ? to_f(qp[d0 + e]) * a.scale : 0.f;
    }
    const T * kb = a.k + b * a.ks0 + kvh * a.ks1;
    const T * vb = a.v + b * a.vs0 + kvh * a.vs1;

    float m = -INFINITY, l = 0.f, acc[N];
#pragma unroll
    for (int e = 0; e < N; ++e) acc[e] = 0.f;
    for (int j = j_begin + warp; j < j_end; j += k_warps) {
        float kv[N], vv[N];
        load_row<T, N>(kb + j * a.ks2, d0, a.D, a.vec, kv);
        load_row<T, N>(vb + j * a.vs2, d0, a.D, a.vec, vv);
        float s = 0.f;
#pragma unroll
        for (int e = 0; e < N; ++e) s += q[e] * kv[e];
        for (int o = 16; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        // every key here is visible, so s and m_new are finite; expf(-inf) = 0 on the first key
        const float m_new = fmaxf(m, s);
        const float alpha = expf(m - m_new), p = expf(s - m_new);
        l = l * alpha + p;
#pragma unroll
        for (int e = 0; e < N; ++e) acc[e] = acc[e] * alpha + p * vv[e];
        m = m_new;
    }

#pragma unroll
    for (int e = 0; e < N; ++e) w_acc[warp][d0 + e] = acc[e];
    if (lane == 0) w_m[warp] = m, w_l[warp] = l;
    __syncthreads();

    // merge the warps; a warp (or the whole block) with no keys has m = -inf and weight 0
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w < k_warps; ++w) mx = fmaxf(mx, w_m[w]);
    float wt[k_warps], sum = 0.f;
#pragma unroll
    for (int w = 0; w < k_warps; ++w) {
        wt[w] = w_m[w] == -INFINITY ? 0.f : expf(w_m[w] - mx);
        sum += wt[w] * w_l[w];
    }
    if (a.splits == 1) {
        const float inv = sum > 0.f ? 1.f / sum : 0.f;
        T * orow = a.o + row * a.D;
        for (int d = threadIdx.x; d < a.D; d += k_threads) {
            float o = 0.f;
#pragma unroll
            for (int w = 0; w < k_warps; ++w) o += wt[w] * w_acc[w][d];
            orow[d] = from_f<T>(o * inv);
        }
    } else {
        const int64_t slot = row * a.splits + split;
        float * po = a.part_o + slot * a.D;
        for (int d = threadIdx.x; d < a.D; d += k_threads) {
            float o = 0.f;
#pragma unroll
            for (int w = 0; w < k_warps; ++w) o += wt[w] * w_acc[w][d];
            po[d] = o;
        }
        if (threadIdx.x == 0) {
            a.part_ml[slot * 2] = mx;
            a.part_ml[slot * 2 + 1] = sum;
        }
    }
}

// one block per (b, h, i): weights exp(m_s - M) over the splits, then out = sum w*acc / sum w*l
template <class T>
__global__ void __launch_bounds__(k_threads) merge_kernel(Args<T> a) {
    __shared__ float wt[k_max_splits];
    __shared__ float inv_sum;
    const int64_t row = blockIdx.x;
    const float * ml = a.part_ml + row * a.splits * 2;
    if (threadIdx.x < 32) {
        float mx = -INFINITY;
        for (int s = threadIdx.x; s < a.splits; s += 32) mx = fmaxf(mx, ml[s * 2]);
        for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float sum = 0.f;
        for (int s = threadIdx.x; s < a.splits; s += 32) {
            // an empty split (all its keys past this query's position) has m = -inf, weight 0
            const float w = ml[s * 2] == -INFINITY ? 0.f : expf(ml[s * 2] - mx);
            wt[s] = w;
            sum += w * ml[s * 2 + 1];
        }
        for (int o = 16; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
        if (threadIdx.x == 0) inv_sum = sum > 0.f ? 1.f / sum : 0.f;
    }
    __syncthreads();
    const float * po = a.part_o + row * a.splits * a.D;
    T * orow = a.o + row * a.D;
    for (int d = threadIdx.x; d < a.D; d += k_threads) {
        float o = 0.f;
        for (int s = 0; s < a.splits; ++s) o += wt[s] * po[int64_t(s) * a.D + d];
        orow[d] = from_f<T>(o * inv_sum);
    }
}

template <class T, int DMAX>
void launch_dmax(const Args<T> & a, int64_t rows, const at::Device & dev) {
    auto stream = c10::cuda::getCurrentCUDAStream(dev.index());
    decode_kernel<T, DMAX><<<unsigned(rows * a.splits), k_threads, 0, stream>>>(a);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) fail("attention_decode: CUDA launch failed: ", cudaGetErrorString(e));
    if (a.splits > 1) {
        merge_kernel<T><<<unsigned(rows), k_threads, 0, stream>>>(a);
        e = cudaGetLastError();
        if (e != cudaSuccess) fail("attention_decode: CUDA merge launch failed: ", cudaGetErrorString(e));
    }
}

bool aligned_rows(const at::Tensor & t, int64_t n_elems) {
    const int64_t bytes = n_elems * int64_t(t.element_size());
    return reinterpret_cast<uintptr_t>(t.data_ptr()) % uintptr_t(bytes) == 0 && t.stride(0) % n_elems == 0 &&
           t.stride(1) % n_elems == 0 && t.stride(2) % n_elems == 0;
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
    a.scale = float(scale);
    a.causal = causal;
    const int dmax = a.D <= 128 ? 128 : 256;
    a.vec = a.D == dmax && aligned_rows(k, dmax / 32) && aligned_rows(v, dmax / 32);

    // enough blocks for every SM several times over, each split keeping a fair run of keys
    const int64_t rows = q.size(0) * q.size(1) * q.size(2);
    const int64_t sms = at::cuda::getCurrentDeviceProperties()->multiProcessorCount;
    int64_t splits = (8 * sms + rows - 1) / rows;
    splits = std::min<int64_t>({splits, (a.Tk + k_min_keys_per_split - 1) / k_min_keys_per_split,
                                int64_t(k_max_splits)});
    splits = std::max<int64_t>(splits, 1);
    a.chunk = int((a.Tk + splits - 1) / splits);
    a.splits = int((a.Tk + a.chunk - 1) / a.chunk);  // no split left without keys for the last query
    VLLM_CHECK(rows * a.splits <= int64_t(INT32_MAX), "attention_decode: too many (query, split) blocks: ",
               rows * a.splits);

    at::Tensor part_o, part_ml;
    if (a.splits > 1) {
        part_o = at::empty({rows, a.splits, a.D}, q.options().dtype(at::kFloat));
        part_ml = at::empty({rows, a.splits, 2}, q.options().dtype(at::kFloat));
        a.part_o = part_o.data_ptr<float>();
        a.part_ml = part_ml.data_ptr<float>();
    } else {
        a.part_o = a.part_ml = nullptr;
    }
    if (dmax == 128)
        launch_dmax<T, 128>(a, rows, q.device());
    else
        launch_dmax<T, 256>(a, rows, q.device());
    // part_o/part_ml go back to the caching allocator on this stream: reuse is ordered after the merge
}

}  // namespace

at::Tensor attention_decode(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal,
                            double scale) {
    check_attention_args(q, k, v, causal, "attention_decode");
    VLLM_CHECK(q.is_cuda() && k.device() == q.device() && v.device() == q.device(),
               "attention_decode: q, k, v must be on one CUDA device");
    VLLM_CHECK(q.size(2) < (int64_t(1) << 30) && k.size(2) < (int64_t(1) << 30),
               "attention_decode: sequence too long");
    c10::cuda::CUDAGuard guard(q.device());
    at::Tensor qc = q.stride(3) == 1 ? q : q.contiguous();
    at::Tensor o = at::empty({q.size(0), q.size(1), q.size(2), q.size(3)},
                             q.options().memory_format(at::MemoryFormat::Contiguous));
    if (o.numel() == 0) return o;
    switch (q.scalar_type()) {
        case at::kFloat: launch<float>(qc, k, v, o, causal, scale); break;
        case at::kHalf: launch<__half>(qc, k, v, o, causal, scale); break;
        case at::kBFloat16: launch<__nv_bfloat16>(qc, k, v, o, causal, scale); break;
        default: fail("attention_decode: unsupported dtype ", q.scalar_type(), " (f32, f16, bf16)");
    }
    return o;
}

at::Tensor attention(const at::Tensor & q, const at::Tensor & k, const at::Tensor & v, bool causal, double scale) {
    check_attention_args(q, k, v, causal, "attention");
    // a prefill block holds 32 queries: below a handful, splitting the keys uses the GPU better
    return q.size(2) <= 4 ? attention_decode(q, k, v, causal, scale) : attention_prefill(q, k, v, causal, scale);
}

}  // namespace visionllm::kernels::cuda
