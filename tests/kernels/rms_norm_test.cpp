// rms_norm: the CPU kernel, and the CUDA kernel when a GPU is present, against
// a naive reference written with ATen ops (LlamaRMSNorm's formula), on random
// shapes including awkward ones.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "kernels/ops.h"
#include "visionllm/device.h"

namespace {

// LlamaRMSNorm.forward: x.float(); x * rsqrt(mean(x^2) + eps); to(input dtype); weight * x
at::Tensor reference(const at::Tensor & x, const at::Tensor & w, double eps) {
    at::Tensor xf = x.to(at::kFloat);
    at::Tensor var = xf.pow(2).mean(-1, true);
    at::Tensor h = (xf * at::rsqrt(var + eps)).to(x.scalar_type());
    return w * h;
}

double tol(at::ScalarType t) { return t == at::kFloat ? 1e-5 : (t == at::kHalf ? 2e-3 : 1.6e-2); }

struct Case {
    std::vector<int64_t> shape;
    at::ScalarType dtype;
};

std::vector<Case> cases() {
    std::vector<Case> c;
    for (auto dt : {at::kFloat, at::kHalf, at::kBFloat16}) {
        for (std::vector<int64_t> s : std::vector<std::vector<int64_t>>{
                 {1, 1}, {1, 7}, {3, 64}, {5, 4096}, {2, 3, 127}, {17, 1000}, {1, 11008}, {0, 16}, {4, 33}})
            c.push_back({s, dt});
    }
    return c;
}

}  // namespace

TEST(RmsNormKernel, CpuMatchesReference) {
    at::manual_seed(0);
    for (const auto & c : cases()) {
        at::Tensor x = (at::randn(c.shape) * 3).to(c.dtype);
        at::Tensor w = (1 + 0.1 * at::randn({c.shape.back()})).to(c.dtype);
        at::Tensor got = visionllm::kernels::rms_norm(x, w, 1e-5);
        at::Tensor want = reference(x, w, 1e-5);
        ASSERT_EQ(got.sizes(), want.sizes());
        ASSERT_EQ(got.scalar_type(), c.dtype);
        EXPECT_TRUE(at::allclose(got.to(at::kFloat), want.to(at::kFloat), tol(c.dtype), tol(c.dtype)))
            << "shape " << at::IntArrayRef(c.shape) << " " << c.dtype << " max diff "
            << (got.to(at::kFloat) - want.to(at::kFloat)).abs().max().item<float>();
    }
}

TEST(RmsNormKernel, NonContiguousInput) {
    at::Tensor x = at::randn({64, 8}).t();  // [8, 64] with strides (1, 8)
    at::Tensor w = at::rand({64});
    EXPECT_TRUE(at::allclose(visionllm::kernels::rms_norm(x, w, 1e-6), reference(x, w, 1e-6), 1e-5, 1e-5));
}

TEST(RmsNormKernel, BadArgumentsAreErrors) {
    using visionllm::test::error_of;
    std::string e = error_of([] { visionllm::kernels::rms_norm(at::randn({2, 8}), at::randn({7}), 1e-5); });
    EXPECT_NE(e.find("rms_norm"), std::string::npos) << e;
    e = error_of([] { visionllm::kernels::rms_norm(at::randn({2, 8}), at::randn({8}).to(at::kHalf), 1e-5); });
    EXPECT_NE(e.find("rms_norm"), std::string::npos) << e;
    e = error_of([] { visionllm::kernels::rms_norm(at::ones({2, 8}, at::kInt), at::ones({8}, at::kInt), 1e-5); });
    EXPECT_NE(e.find("unsupported dtype"), std::string::npos) << e;
}

TEST(RmsNormKernel, CudaMatchesCpu) {
    if (!visionllm::cuda_usable()) GTEST_SKIP() << "no usable CUDA device";
    at::manual_seed(1);
    for (const auto & c : cases()) {
        at::Tensor x = (at::randn(c.shape) * 3).to(c.dtype);
        at::Tensor w = (1 + 0.1 * at::randn({c.shape.back()})).to(c.dtype);
        at::Tensor cpu = visionllm::kernels::rms_norm(x, w, 1e-5);
        at::Tensor gpu = visionllm::kernels::rms_norm(x.cuda(), w.cuda(), 1e-5).cpu();
        EXPECT_TRUE(at::allclose(gpu.to(at::kFloat), cpu.to(at::kFloat), tol(c.dtype), tol(c.dtype)))
            << "shape " << at::IntArrayRef(c.shape) << " " << c.dtype;
        EXPECT_TRUE(at::allclose(gpu.to(at::kFloat), reference(x, w, 1e-5).to(at::kFloat), tol(c.dtype), tol(c.dtype)));
    }
}
