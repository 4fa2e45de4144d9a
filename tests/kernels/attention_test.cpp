// attention: the CPU kernel against HF 4.34 LlamaAttention's eager path
// (repeat_kv, q·kᵀ·scale + causal mask, softmax, ·v) computed in fp64 over the
// same rounded inputs; the CUDA kernels (dispatch, prefill and decode each) against
// the CPU when a GPU is present. Shapes cover decode, prefill, chunked prefill
// (Tq < Tk), GQA and MHA, odd head dims, and k/v as strided KV-cache views.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "common/test_util.h"
#include "kernels/ops.h"
#include "visionllm/device.h"

namespace k = visionllm::kernels;

namespace {

// HF eager attention in fp64; the causal mask is bottom-right aligned (query i is at position Tk - Tq + i)
at::Tensor reference(const at::Tensor & q, const at::Tensor & kk, const at::Tensor & vv, bool causal, double scale) {
    const int64_t H = q.size(1), Tq = q.size(2), Tk = kk.size(2), G = H / kk.size(1);
    at::Tensor qd = q.to(at::kDouble);
    at::Tensor kd = kk.to(at::kDouble).repeat_interleave(G, 1), vd = vv.to(at::kDouble).repeat_interleave(G, 1);
    at::Tensor s = at::matmul(qd, kd.transpose(2, 3)) * scale;
    if (causal) {
        at::Tensor mask = at::arange(Tk).unsqueeze(0) > (at::arange(Tq).unsqueeze(1) + (Tk - Tq));
        s = s.masked_fill(mask, -std::numeric_limits<double>::infinity());
    }
    return at::matmul(at::softmax(s, -1), vd);
}

double tol(at::ScalarType t) { return t == at::kFloat ? 1e-4 : (t == at::kHalf ? 4e-3 : 1.6e-2); }

struct Case {
    int64_t B, H, Hkv, Tq, Tk, D;
    bool causal;
};

// layout 0: contiguous; 1: k/v are [:, :, :Tk] views of a longer cache, q a slice of a longer
// buffer; 2: q/k/v are [B, T, heads, D] transposed (heads and T strides swapped, like a fused qkv)
const int k_layouts = 3;

// the storage a tensor of [B, heads, T, D] is a view of; made on the CPU so both devices see the same values
at::Tensor make_base(int64_t B, int64_t heads, int64_t T, int64_t D, int layout, at::ScalarType dt, double mul) {
    at::Tensor t = layout == 1   ? at::randn({B, heads, T + 13, D})
                   : layout == 2 ? at::randn({B, T, heads, D})
                                 : at::randn({B, heads, T, D});
    return (t * mul).to(dt);
}

at::Tensor view_of(const at::Tensor & base, int64_t T, int layout) {
    if (layout == 1) return base.slice(2, 0, T);
    if (layout == 2) return base.transpose(1, 2);
    return base;
}

struct Inputs {
    at::Tensor q, k, v;  // the bases
    int layout;
    Inputs to(const at::Device & d) const { return {q.to(d), k.to(d), v.to(d), layout}; }
};

Inputs make_inputs(const Case & c, int layout, at::ScalarType dt, double qmul = 1.0) {
    return {make_base(c.B, c.H, c.Tq, c.D, layout, dt, qmul), make_base(c.B, c.Hkv, c.Tk, c.D, layout, dt, 1.0),
            make_base(c.B, c.Hkv, c.Tk, c.D, layout, dt, 1.0), layout};
}

using AttnFn = std::function<at::Tensor(const at::Tensor &, const at::Tensor &, const at::Tensor &, bool, double)>;

at::Tensor run(const AttnFn & fn, const Inputs & in, const Case & c) {
    return fn(view_of(in.q, c.Tq, in.layout), view_of(in.k, c.Tk, in.layout), view_of(in.v, c.Tk, in.layout),
              c.causal, 1.0 / std::sqrt(double(c.D)));
}

std::vector<Case> cases() {
    return {
        {1, 1, 1, 1, 1, 64, false},    // one key
        {1, 4, 1, 1, 1, 64, true},     // decode at position 0, GQA 4:1
        {1, 32, 32, 1, 37, 128, true},  // decode, MHA like LLaMA-7B
        {2, 4, 1, 17, 17, 64, true},   // prefill, GQA
        {2, 6, 2, 17, 17, 6, true},    // odd small head dim
        {1, 6, 2, 5, 23, 128, true},   // chunked prefill after a cache
        {2, 4, 4, 3, 40, 64, true},    // a few queries
        {1, 8, 8, 16, 16, 128, false},  // bidirectional
        {2, 6, 2, 9, 30, 128, false},  // bidirectional, Tq < Tk
        {1, 2, 1, 1, 300, 256, true},  // largest head dim, decode
        {1, 4, 2, 65, 65, 96, true},   // crosses query tiles
        {1, 2, 2, 33, 100, 130, true},  // D > 128 and not a multiple of 4
        {1, 3, 1, 1, 1, 7, true},      // odd head dim, decode
        {1, 3, 3, 40, 90, 7, true},    // odd head dim, chunk
        {2, 4, 2, 0, 5, 64, true},     // no queries
        {1, 8, 8, 200, 200, 128, true},  // longer prefill
    };
}

std::string describe(const Case & c, int layout, at::ScalarType dt) {
    std::ostringstream s;
    s << "B=" << c.B << " H=" << c.H << " Hkv=" << c.Hkv << " Tq=" << c.Tq << " Tk=" << c.Tk << " D=" << c.D
      << " causal=" << c.causal << " layout=" << layout << " " << dt;
    return s.str();
}

}  // namespace

TEST(AttentionKernel, CpuMatchesReference) {
    at::manual_seed(0);
    for (const auto & c : cases())
        for (int layout = 0; layout < k_layouts; ++layout)
            for (auto dt : {at::kFloat, at::kHalf, at::kBFloat16}) {
                Inputs in = make_inputs(c, layout, dt, layout == 2 ? 3.0 : 1.0);  // peakier softmax in one layout
                at::Tensor got = run(AttnFn(k::attention), in, c);
                ASSERT_EQ(got.sizes(), (std::vector<int64_t>{c.B, c.H, c.Tq, c.D})) << describe(c, layout, dt);
                ASSERT_TRUE(got.is_contiguous());
                ASSERT_EQ(got.scalar_type(), dt);
                at::Tensor want = run(reference, in, c);
                if (got.numel() == 0) continue;
                EXPECT_TRUE(at::allclose(got.to(at::kDouble), want, tol(dt), tol(dt)))
                    << describe(c, layout, dt) << " max diff "
                    << (got.to(at::kDouble) - want).abs().max().item<double>();
            }
}

TEST(AttentionKernel, CausalEqualsPrefixOfFullPrefill) {
    // decoding token by token against a cache gives the rows of one causal prefill
    at::manual_seed(2);
    const int64_t T = 12, H = 4, Hkv = 2, D = 32;
    at::Tensor q = at::randn({1, H, T, D}), kk = at::randn({1, Hkv, T, D}), vv = at::randn({1, Hkv, T, D});
    at::Tensor full = k::attention(q, kk, vv, true, 0.2);
    for (int64_t t = 0; t < T; ++t) {
        at::Tensor one = k::attention(q.slice(2, t, t + 1), kk.slice(2, 0, t + 1), vv.slice(2, 0, t + 1), true, 0.2);
        EXPECT_TRUE(at::allclose(one, full.slice(2, t, t + 1), 1e-5, 1e-5)) << "t=" << t;
    }
}

TEST(AttentionKernel, BadArgumentsAreErrors) {
    using visionllm::test::error_of;
    auto expect_error = [](const std::function<void()> & fn, const std::string & what) {
        std::string e = error_of(fn);
        EXPECT_NE(e.find("attention"), std::string::npos) << what << ": " << e;
    };
    at::Tensor q = at::randn({1, 4, 3, 8}), kv = at::randn({1, 2, 5, 8});
    expect_error([&] { k::attention(at::randn({1, 4, 6, 8}), kv, kv, true, 1.0); }, "Tq > Tk causal");
    expect_error([&] { k::attention(q, at::randn({1, 3, 5, 8}), at::randn({1, 3, 5, 8}), true, 1.0); }, "H % Hkv");
    expect_error([&] { k::attention(q, kv, kv.to(at::kHalf), true, 1.0); }, "dtype");
    expect_error([&] { k::attention(q.to(at::kHalf), kv.to(at::kHalf), kv.to(at::kBFloat16), true, 1.0); }, "dtype");
    expect_error([&] { k::attention(q, kv, at::randn({1, 2, 4, 8}), true, 1.0); }, "k/v shapes");
    expect_error([&] { k::attention(q, at::randn({1, 2, 5, 7}), at::randn({1, 2, 5, 7}), true, 1.0); }, "D");
    expect_error([&] { k::attention(q, at::randn({2, 2, 5, 8}), at::randn({2, 2, 5, 8}), true, 1.0); }, "B");
    expect_error([&] { k::attention(q[0], kv[0], kv[0], true, 1.0); }, "3-d");
    expect_error([&] { k::attention(q, at::randn({1, 0, 5, 8}), at::randn({1, 0, 5, 8}), false, 1.0); }, "Hkv=0");
    expect_error([&] { k::attention(q, at::randn({1, 2, 0, 8}), at::randn({1, 2, 0, 8}), false, 1.0); }, "Tk=0");
    at::Tensor big = at::randn({1, 1, 2, 257});
    expect_error([&] { k::attention(big, big, big, false, 1.0); }, "D > 256");
    at::Tensor strided = at::randn({1, 2, 8, 5}).transpose(2, 3);  // last dim not contiguous
    expect_error([&] { k::attention(q, strided, kv, true, 1.0); }, "k last dim");
    expect_error([&] { k::attention(q, kv, strided, true, 1.0); }, "v last dim");
    std::string e = error_of([] {
        at::Tensor i = at::ones({1, 1, 2, 8}, at::kInt);
        k::attention(i, i, i, false, 1.0);
    });
    EXPECT_NE(e.find("unsupported dtype"), std::string::npos) << e;
    // a strided q is fine, k/v strides on dims 0-2 too
    at::Tensor qs = at::randn({1, 3, 4, 8}).transpose(1, 2);
    EXPECT_EQ(error_of([&] { k::attention(qs, kv.slice(2, 0, 4), kv.slice(2, 1, 5), true, 1.0); }), "");
}

TEST(AttentionKernel, CudaMatchesCpu) {
    if (!visionllm::cuda_usable()) GTEST_SKIP() << "no usable CUDA device";
#ifdef VISIONLLM_WITH_CUDA
    at::manual_seed(1);
    auto cs = cases();
    cs.push_back({1, 32, 32, 1000, 1000, 128, true});   // long prefill
    cs.push_back({1, 32, 8, 1, 3000, 128, true});       // long decode, GQA
    cs.push_back({2, 32, 32, 4, 3000, 128, true});      // speculative-style few queries
    cs.push_back({1, 32, 32, 100, 3000, 128, true});    // chunked prefill after a long cache
    cs.push_back({1, 4, 4, 1, 4096, 256, false});       // many splits, big head
    const at::Device gpu("cuda");
    const std::vector<std::pair<const char *, AttnFn>> fns{
        {"dispatch", AttnFn(k::attention)},
        {"prefill", AttnFn(k::cuda::attention_prefill)},
        {"decode", AttnFn(k::cuda::attention_decode)},
    };
    for (const auto & c : cs)
        for (int layout = 0; layout < k_layouts; ++layout)
            for (auto dt : {at::kFloat, at::kHalf, at::kBFloat16}) {
                Inputs in = make_inputs(c, layout, dt, layout == 2 ? 3.0 : 1.0);
                at::Tensor cpu = run(AttnFn(k::attention), in, c).to(at::kFloat);
                Inputs din = in.to(gpu);
                for (const auto & [name, fn] : fns) {
                    at::Tensor got = run(fn, din, c);
                    ASSERT_TRUE(got.is_cuda()) << name;
                    ASSERT_TRUE(got.is_contiguous()) << name;
                    ASSERT_EQ(got.sizes(), cpu.sizes()) << name << " " << describe(c, layout, dt);
                    ASSERT_EQ(got.scalar_type(), dt);
                    got = got.cpu().to(at::kFloat);
                    if (got.numel() == 0) continue;
                    EXPECT_TRUE(at::allclose(got, cpu, tol(dt), tol(dt)))
                        << name << " " << describe(c, layout, dt) << " max diff "
                        << (got - cpu).abs().max().item<float>();
                }
            }
#endif
}
