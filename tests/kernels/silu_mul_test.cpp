// silu_mul: the CPU kernel (with its polynomial exp), and the CUDA kernel when a
// GPU is present, against silu(gate) * up in fp64 over the same rounded inputs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "kernels/ops.h"
#include "visionllm/device.h"

namespace {

// LlamaMLP: act_fn(gate_proj(x)) * up_proj(x), here exact (fp64)
at::Tensor reference(const at::Tensor & g, const at::Tensor & u) {
    at::Tensor gd = g.to(at::kDouble), ud = u.to(at::kDouble);
    return gd * at::sigmoid(gd) * ud;
}

double tol(at::ScalarType t) { return t == at::kFloat ? 1e-5 : (t == at::kHalf ? 2e-3 : 1.6e-2); }

struct Case {
    std::vector<int64_t> shape;
    at::ScalarType dtype;
};

std::vector<Case> cases() {
    std::vector<Case> c;
    for (auto dt : {at::kFloat, at::kHalf, at::kBFloat16})
        for (std::vector<int64_t> s : std::vector<std::vector<int64_t>>{
                 {1}, {7}, {1, 11008}, {3, 7}, {2, 3, 5}, {17, 1000}, {0, 16}, {5, 4097}, {1, 257, 11008}})
            c.push_back({s, dt});
    return c;
}

}  // namespace

TEST(SiluMulKernel, CpuMatchesReference) {
    at::manual_seed(0);
    for (const auto & c : cases()) {
        at::Tensor g = (at::randn(c.shape) * 4).to(c.dtype), u = (at::randn(c.shape) * 2).to(c.dtype);
        at::Tensor got = visionllm::kernels::silu_mul(g, u);
        ASSERT_EQ(got.sizes(), g.sizes());
        ASSERT_EQ(got.scalar_type(), c.dtype);
        at::Tensor want = reference(g, u);
        EXPECT_TRUE(at::allclose(got.to(at::kDouble), want, tol(c.dtype), tol(c.dtype)))
            << "shape " << at::IntArrayRef(c.shape) << " " << c.dtype << " max diff "
            << (got.to(at::kDouble) - want).abs().max().item<double>();
    }
}

TEST(SiluMulKernel, ExtremeGates) {
    // saturation on both sides, around the exp clamp, tiny and zero gates, NaN and inf
    const float inf = std::numeric_limits<float>::infinity();
    at::Tensor g = at::tensor({-1000.f, -100.f, -88.5f, -87.f, -20.f, -1e-30f, 0.f, 1e-30f, 0.5f, 20.f, 87.5f, 88.5f,
                               100.f, 1000.f, 1e38f, inf});
    at::Tensor u = at::full_like(g, 1.5f);
    at::Tensor got = visionllm::kernels::silu_mul(g, u).to(at::kDouble);
    at::Tensor want = reference(g, u);
    EXPECT_TRUE(at::allclose(got, want, 1e-6, 1e-30)) << got << want;
    at::Tensor n = visionllm::kernels::silu_mul(at::tensor({std::nanf("")}), at::tensor({1.f}));
    EXPECT_TRUE(std::isnan(n.item<float>()));
    // every gate in a fine sweep, f32: the polynomial exp must stay within a few ulp
    at::Tensor sweep = at::linspace(-87, 88, 200001);
    at::Tensor ones = at::ones_like(sweep);
    at::Tensor rel = (visionllm::kernels::silu_mul(sweep, ones).to(at::kDouble) - reference(sweep, ones)).abs() /
                     (reference(sweep, ones).abs() + 1e-30);
    EXPECT_LT(rel.max().item<double>(), 1e-6);
}

TEST(SiluMulKernel, NonContiguousInputs) {
    at::Tensor g = at::randn({64, 8}).t(), u = at::randn({8, 64});
    EXPECT_TRUE(at::allclose(visionllm::kernels::silu_mul(g, u).to(at::kDouble), reference(g, u), 1e-5, 1e-6));
}

TEST(SiluMulKernel, BadArgumentsAreErrors) {
    using visionllm::test::error_of;
    namespace k = visionllm::kernels;
    std::string e = error_of([] { k::silu_mul(at::randn({2, 8}), at::randn({2, 7})); });
    EXPECT_NE(e.find("silu_mul"), std::string::npos) << e;
    e = error_of([] { k::silu_mul(at::randn({2, 8}), at::randn({8})); });  // no broadcasting
    EXPECT_NE(e.find("silu_mul"), std::string::npos) << e;
    e = error_of([] { k::silu_mul(at::randn({2, 8}), at::randn({2, 8}).to(at::kHalf)); });
    EXPECT_NE(e.find("silu_mul"), std::string::npos) << e;
    e = error_of([] { k::silu_mul(at::ones({2, 8}, at::kInt), at::ones({2, 8}, at::kInt)); });
    EXPECT_NE(e.find("silu_mul"), std::string::npos) << e;
    EXPECT_NE(e.find("unsupported dtype"), std::string::npos) << e;
}

TEST(SiluMulKernel, CudaMatchesCpu) {
    if (!visionllm::cuda_usable()) GTEST_SKIP() << "no usable CUDA device";
    at::manual_seed(1);
    for (const auto & c : cases()) {
        at::Tensor g = (at::randn(c.shape) * 4).to(c.dtype), u = (at::randn(c.shape) * 2).to(c.dtype);
        at::Tensor cpu = visionllm::kernels::silu_mul(g, u);
        at::Tensor gpu = visionllm::kernels::silu_mul(g.cuda(), u.cuda());
        ASSERT_TRUE(gpu.is_cuda());
        gpu = gpu.cpu();
        ASSERT_EQ(gpu.sizes(), cpu.sizes());
        EXPECT_TRUE(at::allclose(gpu.to(at::kFloat), cpu.to(at::kFloat), tol(c.dtype), tol(c.dtype)))
            << "shape " << at::IntArrayRef(c.shape) << " " << c.dtype;
        EXPECT_TRUE(at::allclose(gpu.to(at::kDouble), reference(g, u), tol(c.dtype), tol(c.dtype)));
    }
    at::Tensor g = at::randn({64, 8}).t(), u = at::randn({8, 64});  // strided on the device too
    EXPECT_TRUE(at::allclose(visionllm::kernels::silu_mul(g.cuda(), u.cuda()).cpu(), visionllm::kernels::silu_mul(g, u),
                             1e-5, 1e-6));
}
