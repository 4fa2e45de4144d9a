// rope: the CPU kernel, and the CUDA kernel when a GPU is present, against
// HF's apply_rotary_pos_emb (rotate_half) written with ATen ops in fp64, on
// awkward shapes, strided views of x and both cos/sin layouts.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "kernels/ops.h"
#include "visionllm/device.h"

namespace {

// HF: q * cos + rotate_half(q) * sin, cos unsqueezed over the heads ([B, T, H, D] layout here)
at::Tensor reference(const at::Tensor & x, const at::Tensor & cos, const at::Tensor & sin) {
    at::Tensor xf = x.to(at::kDouble);
    at::Tensor c = cos.to(at::kDouble), s = sin.to(at::kDouble);
    if (c.dim() == 2) c = c.unsqueeze(0), s = s.unsqueeze(0);
    c = c.unsqueeze(2), s = s.unsqueeze(2);
    const int64_t half = x.size(-1) / 2;
    at::Tensor rot = at::cat({-xf.slice(-1, half), xf.slice(-1, 0, half)}, -1);
    return xf * c + rot * s;
}

// LlamaRotaryEmbedding's cache rows at `pos` ([T] or [B, T]): emb = cat(freqs, freqs)
std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor & pos, int64_t D, at::ScalarType dt) {
    at::Tensor inv_freq = 1.0 / at::pow(10000.0, at::arange(0, D, 2, at::kDouble) / double(D));
    at::Tensor freqs = pos.to(at::kDouble).unsqueeze(-1) * inv_freq;
    at::Tensor emb = at::cat({freqs, freqs}, -1);
    return {emb.cos().to(dt), emb.sin().to(dt)};
}

double tol(at::ScalarType t) { return t == at::kFloat ? 2e-5 : (t == at::kHalf ? 2e-3 : 1.6e-2); }

struct Case {
    int64_t B, T, H, D;
    bool batched_cos;  // cos/sin [B, T, D] (per-sequence positions) rather than [T, D]
    int layout;        // 0 contiguous, 1 slice of a fused [B, T, 3, H, D] qkv, 2 transposed [B, H, T, D]
    at::ScalarType dtype;
};

std::vector<Case> cases() {
    std::vector<Case> c;
    for (auto dt : {at::kFloat, at::kHalf, at::kBFloat16})
        for (int layout = 0; layout < 3; ++layout)
            for (bool batched : {false, true})
                for (auto s : std::vector<std::array<int64_t, 4>>{{1, 1, 1, 2},
                                                                  {1, 1, 32, 128},
                                                                  {2, 17, 4, 64},
                                                                  {2, 5, 3, 6},
                                                                  {3, 7, 2, 10},
                                                                  {1, 300, 8, 128},
                                                                  {0, 4, 2, 8},
                                                                  {2, 0, 2, 8}})
                    c.push_back({s[0], s[1], s[2], s[3], batched, layout, dt});
    return c;
}

// the storage x is a view of; generated on the CPU so that both devices see the same values
at::Tensor make_base(const Case & c) {
    if (c.layout == 1) return (at::randn({c.B, c.T, 3, c.H, c.D}) * 2).to(c.dtype);
    if (c.layout == 2) return (at::randn({c.B, c.H, c.T, c.D}) * 2).to(c.dtype);
    return (at::randn({c.B, c.T, c.H, c.D}) * 2).to(c.dtype);
}

at::Tensor view_x(const at::Tensor & base, const Case & c) {
    if (c.layout == 1) return base.select(2, 1);
    if (c.layout == 2) return base.transpose(1, 2);
    return base;
}

std::pair<at::Tensor, at::Tensor> make_cos_sin(const Case & c) {
    at::Tensor pos = c.batched_cos ? at::arange(c.T, at::kLong).unsqueeze(0) + at::randint(0, 4000, {c.B, 1})
                                   : at::arange(c.T, at::kLong) + 5;
    return cos_sin(pos, c.D, c.dtype);
}

std::string describe(const Case & c) {
    std::ostringstream s;
    s << "B=" << c.B << " T=" << c.T << " H=" << c.H << " D=" << c.D << " batched_cos=" << c.batched_cos
      << " layout=" << c.layout << " " << c.dtype;
    return s.str();
}

}  // namespace

TEST(RopeKernel, CpuMatchesReference) {
    at::manual_seed(0);
    for (const auto & c : cases()) {
        at::Tensor x = view_x(make_base(c), c);
        auto [cs, sn] = make_cos_sin(c);
        at::Tensor got = visionllm::kernels::rope(x, cs, sn);
        ASSERT_EQ(got.sizes(), x.sizes()) << describe(c);
        ASSERT_TRUE(got.is_contiguous()) << describe(c);
        ASSERT_EQ(got.scalar_type(), c.dtype);
        at::Tensor want = reference(x, cs, sn);
        EXPECT_TRUE(at::allclose(got.to(at::kDouble), want, tol(c.dtype), tol(c.dtype)))
            << describe(c) << " max diff " << (got.to(at::kDouble) - want).abs().max().item<double>();
    }
}

TEST(RopeKernel, NonContiguousLastDim) {
    at::Tensor x = at::randn({2, 3, 4, 8}).transpose(2, 3).contiguous().transpose(2, 3);  // D has stride 4
    ASSERT_NE(x.stride(3), 1);
    auto [cs, sn] = cos_sin(at::arange(3), 8, at::kFloat);
    EXPECT_TRUE(at::allclose(visionllm::kernels::rope(x, cs, sn).to(at::kDouble), reference(x, cs, sn), 1e-5, 1e-5));
}

TEST(RopeKernel, BadArgumentsAreErrors) {
    using visionllm::test::error_of;
    namespace k = visionllm::kernels;
    auto [cs, sn] = cos_sin(at::arange(3), 8, at::kFloat);
    std::string e = error_of([&] { k::rope(at::randn({1, 3, 2, 7}), cs.slice(1, 0, 7), sn.slice(1, 0, 7)); });
    EXPECT_NE(e.find("rope"), std::string::npos) << e;
    EXPECT_NE(e.find("even"), std::string::npos) << e;
    e = error_of([&] { k::rope(at::randn({1, 4, 2, 8}), cs, sn); });  // T mismatch
    EXPECT_NE(e.find("rope"), std::string::npos) << e;
    e = error_of([&] {  // batch of cos/sin differs from x's
        k::rope(at::randn({2, 3, 2, 8}), cs.unsqueeze(0).expand({3, 3, 8}), sn.unsqueeze(0).expand({3, 3, 8}));
    });
    EXPECT_NE(e.find("rope"), std::string::npos) << e;
    e = error_of([&] { k::rope(at::randn({1, 3, 2, 8}), cs, sn.slice(1, 0, 4)); });
    EXPECT_NE(e.find("rope"), std::string::npos) << e;
    e = error_of([&] { k::rope(at::randn({3, 2, 8}), cs, sn); });
    EXPECT_NE(e.find("rope"), std::string::npos) << e;
    e = error_of([&] { k::rope(at::randn({1, 3, 2, 8}).to(at::kHalf), cs, sn); });
    EXPECT_NE(e.find("rope"), std::string::npos) << e;
    e = error_of([&] { k::rope(at::ones({1, 3, 2, 8}, at::kInt), cs.to(at::kInt), sn.to(at::kInt)); });
    EXPECT_NE(e.find("unsupported dtype"), std::string::npos) << e;
}

TEST(RopeKernel, CudaMatchesCpu) {
    if (!visionllm::cuda_usable()) GTEST_SKIP() << "no usable CUDA device";
    at::manual_seed(1);
    auto cs_ = cases();
    for (auto dt : {at::kFloat, at::kHalf, at::kBFloat16})
        for (int layout = 0; layout < 3; ++layout) cs_.push_back({2, 1000, 32, 128, true, layout, dt});
    for (const auto & c : cs_) {
        at::Tensor base = make_base(c);
        auto [cs, sn] = make_cos_sin(c);
        at::Tensor cpu = visionllm::kernels::rope(view_x(base, c), cs, sn);
        at::Tensor gpu = visionllm::kernels::rope(view_x(base.cuda(), c), cs.cuda(), sn.cuda());
        ASSERT_TRUE(gpu.is_cuda());
        ASSERT_EQ(gpu.sizes(), cpu.sizes()) << describe(c);
        ASSERT_TRUE(gpu.is_contiguous()) << describe(c);
        gpu = gpu.cpu();
        EXPECT_TRUE(at::allclose(gpu.to(at::kFloat), cpu.to(at::kFloat), tol(c.dtype), tol(c.dtype)))
            << describe(c) << " max diff " << (gpu.to(at::kFloat) - cpu.to(at::kFloat)).abs().max().item<float>();
    }
}
