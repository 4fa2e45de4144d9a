// linear: the CPU bf16 GEMV (every instruction set this CPU has) against a
// naive fp64 reference over the same bf16 values, on awkward shapes; the
// dispatch against at::linear; CUDA against the CPU when a GPU is present.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "kernels/ops.h"
#include "visionllm/device.h"

namespace k = visionllm::kernels;

namespace {

// y = x·Wᵀ in fp64 over the bf16-rounded inputs
at::Tensor reference(const at::Tensor & x, const at::Tensor & w) {
    return at::matmul(x.to(at::kBFloat16).to(at::kDouble), w.to(at::kDouble).t());
}

std::vector<k::cpu::LinearIsa> isas() {
    std::vector<k::cpu::LinearIsa> v{k::cpu::LinearIsa::Scalar};
    if (k::cpu::linear_best_isa() >= k::cpu::LinearIsa::Avx2) v.push_back(k::cpu::LinearIsa::Avx2);
    if (k::cpu::linear_best_isa() >= k::cpu::LinearIsa::Avx512Bf16) v.push_back(k::cpu::LinearIsa::Avx512Bf16);
    return v;
}

}  // namespace

TEST(LinearKernel, GemvMatchesReferenceOnEveryIsa) {
    at::manual_seed(0);
    for (auto isa : isas()) {
        for (int64_t N : {1, 3, 5, 17, 64, 257}) {
            for (int64_t K : {1, 7, 8, 15, 16, 31, 32, 33, 100, 4096}) {
                for (int64_t M : {1, 2, 3, 4, 5, 8}) {
                    at::Tensor w = at::randn({N, K}).to(at::kBFloat16);
                    at::Tensor x = at::randn({M, K}).to(at::kBFloat16);
                    at::Tensor got = k::cpu::gemv_bf16(x, w, isa);
                    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{M, N}));
                    ASSERT_EQ(got.scalar_type(), at::kBFloat16);
                    at::Tensor want = reference(x, w);
                    // fp32 accumulation, one bf16 rounding of the result: 2^-8 relative plus sum error
                    const double scale = std::sqrt(double(K)) * 4;
                    const double err = (got.to(at::kDouble) - want).abs().max().item<double>();
                    EXPECT_LT(err, 1e-2 * scale + 1e-6) << k::cpu::linear_isa_name(isa) << " N=" << N << " K=" << K
                                                        << " M=" << M;
                    // and every element within bf16 rounding of the exact value
                    EXPECT_TRUE(at::allclose(got.to(at::kDouble), want, 8e-3, 1e-4 * scale))
                        << k::cpu::linear_isa_name(isa) << " N=" << N << " K=" << K << " M=" << M;
                }
            }
        }
    }
}

TEST(LinearKernel, IsasAgreeWithEachOther) {
    at::manual_seed(1);
    at::Tensor w = at::randn({300, 1000}).to(at::kBFloat16);
    at::Tensor x = at::randn({2, 1000}).to(at::kBFloat16);
    at::Tensor base = k::cpu::gemv_bf16(x, w, k::cpu::LinearIsa::Scalar).to(at::kFloat);
    for (auto isa : isas()) {
        at::Tensor got = k::cpu::gemv_bf16(x, w, isa).to(at::kFloat);
        EXPECT_TRUE(at::allclose(got, base, 1e-2, 1e-2)) << k::cpu::linear_isa_name(isa);
    }
}

TEST(LinearKernel, DispatchMatchesAtLinear) {
    at::manual_seed(2);
    for (auto dt : {at::kFloat, at::kBFloat16}) {
        for (std::vector<int64_t> xs : std::vector<std::vector<int64_t>>{{64}, {1, 1, 64}, {3, 64}, {2, 5, 64}, {20, 64}}) {
            at::Tensor w = at::randn({48, 64}).to(dt), b = at::randn({48}).to(dt);
            at::Tensor x = at::randn(xs).to(dt);
            at::Tensor got = k::linear(x, w, b), want = at::linear(x, w, b);
            ASSERT_EQ(got.sizes(), want.sizes());
            const double tol = dt == at::kFloat ? 1e-5 : 3e-2;
            EXPECT_TRUE(at::allclose(got.to(at::kFloat), want.to(at::kFloat), tol, tol)) << dt << " " << x.sizes();
            EXPECT_TRUE(at::allclose(k::linear(x, w).to(at::kFloat), at::linear(x, w).to(at::kFloat), tol, tol));
        }
    }
    // non-contiguous weight (a transposed view)
    at::Tensor wt = at::randn({64, 48}).to(at::kBFloat16).t();
    at::Tensor x = at::randn({1, 64}).to(at::kBFloat16);
    EXPECT_TRUE(at::allclose(k::linear(x, wt).to(at::kFloat), at::linear(x, wt).to(at::kFloat), 3e-2, 3e-2));
}

TEST(LinearKernel, BadArgumentsAreErrors) {
    using visionllm::test::error_of;
    std::string e = error_of([] { k::linear(at::randn({2, 8}), at::randn({4, 7})); });
    EXPECT_NE(e.find("linear: x"), std::string::npos) << e;
    e = error_of([] { k::linear(at::randn({2, 8}), at::randn({4, 8}), at::randn({3})); });
    EXPECT_NE(e.find("linear: bias"), std::string::npos) << e;
    e = error_of([] { k::linear(at::randn({2, 8}), at::randn({4, 8, 1})); });
    EXPECT_NE(e.find("2-D"), std::string::npos) << e;
    e = error_of([] {
        k::cpu::gemv_bf16(at::randn({9, 8}).to(at::kBFloat16), at::randn({4, 8}).to(at::kBFloat16),
                          k::cpu::LinearIsa::Scalar);
    });
    EXPECT_NE(e.find("at most 8 rows"), std::string::npos) << e;
}

TEST(LinearKernel, CudaMatchesCpu) {
    if (!visionllm::cuda_usable()) GTEST_SKIP() << "no usable CUDA device";
    at::manual_seed(3);
    for (int64_t M : {1, 4, 33}) {
        at::Tensor w = at::randn({257, 1000}).to(at::kBFloat16), x = at::randn({M, 1000}).to(at::kBFloat16);
        at::Tensor cpu = k::linear(x, w).to(at::kFloat);
        at::Tensor gpu = k::linear(x.cuda(), w.cuda()).cpu().to(at::kFloat);
        EXPECT_TRUE(at::allclose(gpu, cpu, 3e-2, 3e-1)) << "M=" << M;
    }
}
