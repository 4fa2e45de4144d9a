// bias_act (QuickGELU and exact GELU, with an optional fused bias): the CPU
// kernel (polynomial exp and erfc) and the CUDA kernel when a GPU is present,
// against the formulas in fp64 over the same rounded inputs; in place and out
// of place; a fine fp32 sweep bounds the CPU polynomials' relative error.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "common/test_util.h"
#include "kernels/ops.h"
#include "visionllm/device.h"

namespace {

using visionllm::kernels::Activation;

// act(x + bias) exactly (fp64): QuickGELU x*sigmoid(1.702x); GELU x*Phi(x) = x/2 * erfc(-x/sqrt2), which is
// nn.GELU()'s x/2 * (1 + erf(x/sqrt2)) without its cancellation for negative x
at::Tensor reference(const at::Tensor & x, const at::Tensor & bias, Activation act) {
    at::Tensor v = x.to(at::kDouble);
    if (bias.defined()) v = v + bias.to(at::kDouble);
    if (act == Activation::QuickGelu) return v * at::sigmoid(1.702 * v);
    return v * 0.5 * at::erfc(-v * M_SQRT1_2);
}

double tol(at::ScalarType t) { return t == at::kFloat ? 1e-5 : (t == at::kHalf ? 2e-3 : 1.6e-2); }

struct Case {
    std::vector<int64_t> shape;
    at::ScalarType dtype;
    Activation act;
    bool bias;
};

std::vector<Case> cases() {
    std::vector<Case> c;
    bool bias = false;
    for (auto dt : {at::kFloat, at::kHalf, at::kBFloat16})
        for (auto act : {Activation::QuickGelu, Activation::Gelu})
            for (std::vector<int64_t> s : std::vector<std::vector<int64_t>>{
                     {1}, {7}, {1, 4096}, {3, 7}, {2, 3, 5}, {17, 1000}, {0, 16}, {5, 4097}, {577, 4096}, {}}) {
                c.push_back({s, dt, act, bias && !s.empty()});
                bias = !bias;
            }
    return c;
}

struct Inputs {
    at::Tensor x, bias;
};
// x ~ 4*N(0,1) reaches both tails; bias ~ N(0,1)
Inputs inputs(const Case & c) {
    Inputs in;
    in.x = (at::randn(c.shape) * 4).to(c.dtype);
    if (c.bias) in.bias = at::randn({c.shape.back()}).to(c.dtype);
    return in;
}

std::string describe(const Case & c) {
    std::ostringstream s;
    s << visionllm::kernels::activation_name(c.act) << " shape " << at::IntArrayRef(c.shape) << " " << c.dtype
      << (c.bias ? " with bias" : " without bias");
    return s.str();
}

double max_diff(const at::Tensor & a, const at::Tensor & b) {
    return a.numel() == 0 ? 0.0 : (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

}  // namespace

TEST(BiasActKernel, CpuMatchesReference) {
    at::manual_seed(0);
    for (const auto & c : cases()) {
        Inputs in = inputs(c);
        at::Tensor got = visionllm::kernels::bias_act(in.x, in.bias, c.act);
        ASSERT_EQ(got.sizes(), in.x.sizes());
        ASSERT_EQ(got.scalar_type(), c.dtype);
        at::Tensor want = reference(in.x, in.bias, c.act);
        EXPECT_TRUE(at::allclose(got.to(at::kDouble), want, tol(c.dtype), tol(c.dtype)))
            << describe(c) << " max diff " << max_diff(got, want);
    }
}

// the largest of |got - want| / (|want| + 1e-36), over x where `where` holds
double max_rel_error(const at::Tensor & got, const at::Tensor & want, const at::Tensor & where) {
    at::Tensor rel = (got.to(at::kDouble) - want).abs() / (want.abs() + 1e-36);
    return at::where(where, rel, at::zeros_like(rel)).max().item<double>();
}

TEST(BiasActKernel, Fp32SweepRelativeError) {
    // every 2.5e-4 over [-60, 60]. Relative error below 1e-6 (a few fp32 ulp) for |x| <= 3, in both tails (GELU's
    // negative tail is where 0.5x(1 + erf(x/sqrt2)) cancels: at::gelu is 1e-3 off at x = -4); beyond that the
    // rounding of the exponent grows the relative error of the tiny outputs, ~6e-8 times the exponent: below 1e-5
    // down to outputs of ~100 FLT_MIN. (Measured, AVX2: 4.2e-7 / 4.1e-6 for gelu, 3.7e-7 / 4.9e-6 for quick_gelu;
    // the portable path without FMA: 6.7e-7 / 7.6e-6.)
    at::Tensor x = at::linspace(-60, 60, 480001);
    at::Tensor near = x.abs() <= 3;
    for (auto act : {Activation::QuickGelu, Activation::Gelu}) {
        const char * name = visionllm::kernels::activation_name(act);
        at::Tensor got = visionllm::kernels::bias_act(x, {}, act), want = reference(x, {}, act);
        at::Tensor normal = want.abs() > 1e-36;
        EXPECT_LT(max_rel_error(got, want, near), 1e-6) << name;
        EXPECT_LT(max_rel_error(got, want, normal), 1e-5) << name;
        EXPECT_LT(at::where(normal, at::zeros_like(want), (got.to(at::kDouble) - want).abs()).max().item<double>(),
                  1e-36)
            << name << ": outputs below 1e-36 must be ~0";
        // and the same through a bias: x + b is formed in fp32 before the activation
        at::Tensor xb = x.view({-1, 1}).expand({480001, 3}).contiguous(), b = at::tensor({0.25f, -1.f, 3.5f});
        got = visionllm::kernels::bias_act(xb, b, act);
        at::Tensor sum = (xb + b).contiguous();  // rounds to fp32 as in the kernel
        want = reference(sum, {}, act);
        EXPECT_LT(max_rel_error(got, want, sum.abs() <= 3), 1e-6) << name << " with bias";
        EXPECT_LT(max_rel_error(got, want, want.abs() > 1e-36), 1e-5) << name << " with bias";
    }
}

TEST(BiasActKernel, SpecialValues) {
    const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
    for (auto act : {Activation::QuickGelu, Activation::Gelu}) {
        const char * name = visionllm::kernels::activation_name(act);
        at::Tensor y = visionllm::kernels::bias_act(at::tensor({inf, -inf, nan, 0.f, 1e38f, -1e38f, 1e-30f}), {}, act);
        auto a = y.accessor<float, 1>();
        EXPECT_EQ(a[0], inf) << name;
        EXPECT_TRUE(std::isnan(a[1])) << name << ": -inf gives NaN, as PyTorch's -inf * 0";
        EXPECT_TRUE(std::isnan(a[2])) << name;
        EXPECT_EQ(a[3], 0.f) << name;
        EXPECT_EQ(a[4], 1e38f) << name;
        EXPECT_EQ(a[5], 0.f) << name;
        EXPECT_NEAR(a[6], 0.5e-30f, 1e-36f) << name;
        // f16 / bf16 round trip of the same
        for (auto dt : {at::kHalf, at::kBFloat16}) {
            at::Tensor h = visionllm::kernels::bias_act(at::tensor({inf, nan, 0.f, 2.f}).to(dt), {}, act).to(at::kFloat);
            auto ha = h.accessor<float, 1>();
            EXPECT_EQ(ha[0], inf) << name << " " << dt;
            EXPECT_TRUE(std::isnan(ha[1])) << name << " " << dt;
            EXPECT_EQ(ha[2], 0.f) << name << " " << dt;
            EXPECT_NEAR(ha[3], reference(at::tensor({2.f}), {}, act).item<double>(), 2e-2) << name << " " << dt;
        }
    }
}

TEST(BiasActKernel, InPlaceMatchesOutOfPlace) {
    at::manual_seed(4);
    for (auto dt : {at::kFloat, at::kHalf, at::kBFloat16})
        for (auto act : {Activation::QuickGelu, Activation::Gelu})
            for (bool bias : {false, true}) {
                at::Tensor x = (at::randn({33, 1029}) * 3).to(dt);
                at::Tensor b = bias ? at::randn({1029}).to(dt) : at::Tensor();
                at::Tensor want = visionllm::kernels::bias_act(x, b, act);
                at::Tensor y = x.clone();
                void * p = y.data_ptr();
                visionllm::kernels::bias_act_(y, b, act);
                EXPECT_EQ(y.data_ptr(), p);
                EXPECT_TRUE(at::equal(y, want)) << visionllm::kernels::activation_name(act) << " " << dt
                                                << (bias ? " with bias" : "");
            }
}

TEST(BiasActKernel, NonContiguousAndMisalignedInputs) {
    at::Tensor x = at::randn({64, 8}).t(), b = at::randn({64});  // [8, 64] with strides (1, 8)
    for (auto act : {Activation::QuickGelu, Activation::Gelu}) {
        EXPECT_TRUE(at::allclose(visionllm::kernels::bias_act(x, b, act).to(at::kDouble), reference(x, b, act), 1e-5,
                                 1e-6));
        // contiguous, but one element off the allocation's alignment
        at::Tensor m = at::randn({7 * 64 + 1}).narrow(0, 1, 7 * 64).view({7, 64});
        EXPECT_TRUE(at::allclose(visionllm::kernels::bias_act(m, b, act).to(at::kDouble), reference(m, b, act), 1e-5,
                                 1e-6));
    }
}

TEST(BiasActKernel, BadArgumentsAreErrors) {
    using visionllm::test::error_of;
    namespace k = visionllm::kernels;
    std::string e = error_of([] { k::bias_act(at::randn({2, 8}), at::randn({7}), Activation::Gelu); });
    EXPECT_NE(e.find("bias_act"), std::string::npos) << e;
    EXPECT_NE(e.find("bias"), std::string::npos) << e;
    e = error_of([] { k::bias_act(at::randn({2, 8}), at::randn({2, 8}), Activation::Gelu); });  // no broadcasting
    EXPECT_NE(e.find("bias_act"), std::string::npos) << e;
    e = error_of([] { k::bias_act(at::randn({2, 8}), at::randn({8}).to(at::kHalf), Activation::QuickGelu); });
    EXPECT_NE(e.find("bias"), std::string::npos) << e;
    e = error_of([] { k::bias_act(at::randn({}), at::randn({1}), Activation::Gelu); });
    EXPECT_NE(e.find("bias_act"), std::string::npos) << e;
    e = error_of([] { k::bias_act(at::ones({2, 8}, at::kInt), {}, Activation::Gelu); });
    EXPECT_NE(e.find("unsupported dtype"), std::string::npos) << e;
    e = error_of([] { k::bias_act(at::randn({2, 8}), {}, static_cast<Activation>(7)); });
    EXPECT_NE(e.find("unknown activation"), std::string::npos) << e;
    e = error_of([] {
        at::Tensor x = at::randn({64, 8}).t();
        k::bias_act_(x, {}, Activation::Gelu);
    });
    EXPECT_NE(e.find("bias_act_"), std::string::npos) << e;
    EXPECT_NE(e.find("contiguous"), std::string::npos) << e;
    e = error_of([] { k::bias_act(at::Tensor(), {}, Activation::Gelu); });
    EXPECT_NE(e.find("bias_act"), std::string::npos) << e;
}

TEST(BiasActKernel, CudaMatchesCpu) {
    if (!visionllm::cuda_usable()) GTEST_SKIP() << "no usable CUDA device";
    namespace k = visionllm::kernels;
    at::manual_seed(1);
    for (const auto & c : cases()) {
        Inputs in = inputs(c);
        at::Tensor cpu = k::bias_act(in.x, in.bias, c.act);
        at::Tensor gpu = k::bias_act(in.x.cuda(), c.bias ? in.bias.cuda() : in.bias, c.act);
        ASSERT_TRUE(gpu.is_cuda());
        gpu = gpu.cpu();
        ASSERT_EQ(gpu.sizes(), cpu.sizes());
        ASSERT_EQ(gpu.scalar_type(), c.dtype);
        EXPECT_TRUE(at::allclose(gpu.to(at::kFloat), cpu.to(at::kFloat), tol(c.dtype), tol(c.dtype))) << describe(c);
        EXPECT_TRUE(at::allclose(gpu.to(at::kDouble), reference(in.x, in.bias, c.act), tol(c.dtype), tol(c.dtype)))
            << describe(c) << " max diff " << max_diff(gpu, reference(in.x, in.bias, c.act));
        // in place on the device
        at::Tensor y = in.x.cuda();
        k::bias_act_(y, c.bias ? in.bias.cuda() : in.bias, c.act);
        EXPECT_TRUE(at::equal(y.cpu(), gpu)) << describe(c) << " in place";
    }
    // the fp32 sweep, and the scalar (misaligned) path
    at::Tensor x = at::linspace(-60, 60, 480001);
    for (auto act : {Activation::QuickGelu, Activation::Gelu}) {
        at::Tensor got = k::bias_act(x.cuda(), {}, act).cpu().to(at::kDouble);
        at::Tensor want = reference(x, {}, act);
        EXPECT_LE(((got - want).abs() - (2e-6 * want.abs() + 1e-36)).max().item<double>(), 0.0)
            << k::activation_name(act);
        at::Tensor m = at::randn({7 * 64 + 1}).cuda().narrow(0, 1, 7 * 64).view({7, 64});
        at::Tensor b = at::randn({64}).cuda();
        EXPECT_TRUE(at::allclose(k::bias_act(m, b, act).cpu().to(at::kDouble), reference(m.cpu(), b.cpu(), act),
                                 1e-5, 1e-6))
            << k::activation_name(act) << " misaligned";
    }
    std::string e = visionllm::test::error_of(
        [] { k::bias_act(at::randn({2, 8}).cuda(), at::randn({8}), Activation::Gelu); });
    EXPECT_NE(e.find("bias_act"), std::string::npos) << e;
}
