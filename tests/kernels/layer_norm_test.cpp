// layer_norm: the CPU kernel, and the CUDA kernel when a GPU is present, against
// nn.LayerNorm's formula in fp64 over the same rounded inputs, on random shapes
// including awkward ones, rows with a large mean, and no bias.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "common/test_util.h"
#include "kernels/ops.h"
#include "visionllm/device.h"

namespace {

// nn.LayerNorm: (x - mean) / sqrt(var + eps) * w + b, biased variance, exact (fp64)
at::Tensor reference(const at::Tensor & x, const at::Tensor & w, const at::Tensor & b, double eps) {
    at::Tensor xd = x.to(at::kDouble);
    at::Tensor mean = xd.mean(-1, true);
    at::Tensor var = (xd - mean).pow(2).mean(-1, true);
    at::Tensor y = (xd - mean) / at::sqrt(var + eps) * w.to(at::kDouble);
    return b.defined() ? y + b.to(at::kDouble) : y;
}

// one rounding of outputs of magnitude ~1-5 to the dtype, plus fp32 statistics
double tol(at::ScalarType t) { return t == at::kFloat ? 1e-5 : (t == at::kHalf ? 2e-3 : 1.6e-2); }

struct Case {
    std::vector<int64_t> shape;
    at::ScalarType dtype;
    bool bias;
};

std::vector<Case> cases() {
    std::vector<Case> c;
    bool bias = true;
    for (auto dt : {at::kFloat, at::kHalf, at::kBFloat16})
        for (std::vector<int64_t> s : std::vector<std::vector<int64_t>>{{1, 1},
                                                                        {1, 7},
                                                                        {3, 64},
                                                                        {5, 4096},
                                                                        {2, 3, 127},
                                                                        {17, 1000},
                                                                        {1, 4097},
                                                                        {0, 16},
                                                                        {4, 33},
                                                                        {3},
                                                                        {2, 577, 1024}}) {
            c.push_back({s, dt, bias});
            bias = !bias;
        }
    return c;
}

// inputs for a case: x ~ 3*N(0,1) + 0.5, w ~ 1 + 0.1*N, b ~ 0.1*N (or undefined)
struct Inputs {
    at::Tensor x, w, b;
};
Inputs inputs(const Case & c) {
    const int64_t n = c.shape.back();
    Inputs in;
    in.x = (at::randn(c.shape) * 3 + 0.5).to(c.dtype);
    in.w = (1 + 0.1 * at::randn({n})).to(c.dtype);
    if (c.bias) in.b = (0.1 * at::randn({n})).to(c.dtype);
    return in;
}

std::string describe(const Case & c) {
    std::ostringstream s;
    s << "shape " << at::IntArrayRef(c.shape) << " " << c.dtype << (c.bias ? " with bias" : " without bias");
    return s.str();
}

double max_diff(const at::Tensor & a, const at::Tensor & b) {
    return a.numel() == 0 ? 0.0 : (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace

TEST(LayerNormKernel, CpuMatchesReference) {
    at::manual_seed(0);
    for (const auto & c : cases()) {
        Inputs in = inputs(c);
        at::Tensor got = visionllm::kernels::layer_norm(in.x, in.w, in.b, 1e-5);
        at::Tensor want = reference(in.x, in.w, in.b, 1e-5);
        ASSERT_EQ(got.sizes(), in.x.sizes());
        ASSERT_EQ(got.scalar_type(), c.dtype);
        EXPECT_TRUE(at::allclose(got.to(at::kDouble), want, tol(c.dtype), tol(c.dtype)))
            << describe(c) << " max diff " << max_diff(got, want);
    }
}

TEST(LayerNormKernel, Fp32IsAccurate) {
    // fp32 statistics and one rounding: within a few fp32 ulp of the exact result (at::layer_norm's worst on
    // such data is ~2e-6 of the same measure)
    at::manual_seed(2);
    at::Tensor x = at::randn({64, 1024}) * 2, w = at::randn({1024}), b = at::randn({1024});
    at::Tensor got = visionllm::kernels::layer_norm(x, w, b, 1e-5).to(at::kDouble);
    at::Tensor want = reference(x, w, b, 1e-5);
    // relative to the size of the terms summed: |w * x_hat| + |b| (the output itself can cancel to ~0)
    at::Tensor scale = (want - b.to(at::kDouble)).abs() + b.to(at::kDouble).abs() + 1e-4;
    EXPECT_LT(((got - want).abs() / scale).max().item<double>(), 4e-6);
}

TEST(LayerNormKernel, LargeMeanRows) {
    // a large common offset (and one outlier channel, as in CLIP's residual stream) must not cost accuracy:
    // E[x^2] - E[x]^2 in fp32 would lose every digit here
    at::manual_seed(3);
    for (double offset : {1e3, 1e4, -3e4}) {
        at::Tensor x = at::randn({8, 4096}) + offset;
        x.select(1, 17).fill_(offset + 300);
        at::Tensor w = 1 + 0.1 * at::randn({4096}), b = 0.1 * at::randn({4096});
        at::Tensor got = visionllm::kernels::layer_norm(x, w, b, 1e-5);
        at::Tensor want = reference(x, w, b, 1e-5);
        EXPECT_TRUE(at::allclose(got.to(at::kDouble), want, 1e-4, 1e-4))
            << "offset " << offset << " max diff " << max_diff(got, want);
    }
    // a constant row: variance 0, the output is the bias
    at::Tensor x = at::full({2, 100}, 1234.5f), w = at::randn({100}), b = at::randn({100});
    at::Tensor got = visionllm::kernels::layer_norm(x, w, b, 1e-5);
    EXPECT_TRUE(at::allclose(got, b.expand({2, 100}), 0, 1e-6)) << max_diff(got, b.expand({2, 100}));
}

TEST(LayerNormKernel, NonContiguousInput) {
    at::Tensor x = at::randn({64, 8}).t();  // [8, 64] with strides (1, 8)
    at::Tensor w = at::rand({64}), b = at::rand({64});
    at::Tensor got = visionllm::kernels::layer_norm(x, w, b, 1e-6);
    EXPECT_TRUE(at::allclose(got.to(at::kDouble), reference(x, w, b, 1e-6), 1e-5, 1e-5));
    // strided weight and bias too
    at::Tensor w2 = at::randn({64, 2}).select(1, 0), b2 = at::randn({64, 2}).select(1, 1);
    got = visionllm::kernels::layer_norm(x, w2, b2, 1e-6);
    EXPECT_TRUE(at::allclose(got.to(at::kDouble), reference(x, w2, b2, 1e-6), 1e-5, 1e-5));
}

TEST(LayerNormKernel, NanPropagatesWithinItsRow) {
    at::Tensor x = at::randn({3, 32});
    x[1][5] = std::numeric_limits<float>::quiet_NaN();
    at::Tensor y = visionllm::kernels::layer_norm(x, at::ones({32}), at::zeros({32}), 1e-5);
    EXPECT_TRUE(at::isnan(y[1]).all().item<bool>());
    EXPECT_FALSE(at::isnan(y[0]).any().item<bool>());
    EXPECT_FALSE(at::isnan(y[2]).any().item<bool>());
}

TEST(LayerNormKernel, BadArgumentsAreErrors) {
    using visionllm::test::error_of;
    namespace k = visionllm::kernels;
    std::string e = error_of([] { k::layer_norm(at::randn({2, 8}), at::randn({7}), at::randn({8}), 1e-5); });
    EXPECT_NE(e.find("layer_norm"), std::string::npos) << e;
    EXPECT_NE(e.find("weight"), std::string::npos) << e;
    e = error_of([] { k::layer_norm(at::randn({2, 8}), at::randn({8}), at::randn({9}), 1e-5); });
    EXPECT_NE(e.find("bias"), std::string::npos) << e;
    e = error_of([] { k::layer_norm(at::randn({2, 8}), at::randn({8}).to(at::kHalf), at::Tensor(), 1e-5); });
    EXPECT_NE(e.find("weight"), std::string::npos) << e;
    e = error_of([] { k::layer_norm(at::randn({2, 8}), at::randn({8}), at::randn({8}).to(at::kBFloat16), 1e-5); });
    EXPECT_NE(e.find("bias"), std::string::npos) << e;
    e = error_of([] { k::layer_norm(at::ones({2, 8}, at::kInt), at::ones({8}, at::kInt), at::Tensor(), 1e-5); });
    EXPECT_NE(e.find("unsupported dtype"), std::string::npos) << e;
    e = error_of([] { k::layer_norm(at::randn({}), at::randn({1}), at::Tensor(), 1e-5); });
    EXPECT_NE(e.find("layer_norm"), std::string::npos) << e;
    e = error_of([] { k::layer_norm(at::randn({2, 8}), at::randn({8}), at::Tensor(), -1.0); });
    EXPECT_NE(e.find("eps"), std::string::npos) << e;
    e = error_of([] { k::layer_norm(at::Tensor(), at::randn({8}), at::Tensor(), 1e-5); });
    EXPECT_NE(e.find("layer_norm"), std::string::npos) << e;
}

TEST(LayerNormKernel, CudaMatchesCpu) {
    if (!visionllm::cuda_usable()) GTEST_SKIP() << "no usable CUDA device";
    at::manual_seed(1);
    for (const auto & c : cases()) {
        Inputs in = inputs(c);
        at::Tensor cpu = visionllm::kernels::layer_norm(in.x, in.w, in.b, 1e-5);
        at::Tensor gpu = visionllm::kernels::layer_norm(in.x.cuda(), in.w.cuda(), c.bias ? in.b.cuda() : in.b, 1e-5);
        ASSERT_TRUE(gpu.is_cuda());
        gpu = gpu.cpu();
        ASSERT_EQ(gpu.sizes(), cpu.sizes());
        ASSERT_EQ(gpu.scalar_type(), c.dtype);
        EXPECT_TRUE(at::allclose(gpu.to(at::kFloat), cpu.to(at::kFloat), tol(c.dtype), tol(c.dtype))) << describe(c);
        EXPECT_TRUE(at::allclose(gpu.to(at::kDouble), reference(in.x, in.w, in.b, 1e-5), tol(c.dtype), tol(c.dtype)))
            << describe(c) << " max diff " << max_diff(gpu, reference(in.x, in.w, in.b, 1e-5));
    }
    // a large mean on the device too
    at::Tensor x = at::randn({8, 4096}) + 1e4, w = at::randn({4096}), b = at::randn({4096});
    at::Tensor gpu = visionllm::kernels::layer_norm(x.cuda(), w.cuda(), b.cuda(), 1e-5).cpu();
    EXPECT_TRUE(at::allclose(gpu.to(at::kDouble), reference(x, w, b, 1e-5), 1e-4, 1e-4));
    // a device mismatch is an error, not a crash
    std::string e = visionllm::test::error_of([&] { visionllm::kernels::layer_norm(x.cuda(), w, b, 1e-5); });
    EXPECT_NE(e.find("layer_norm"), std::string::npos) << e;
}
