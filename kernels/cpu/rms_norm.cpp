#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels::cpu {

namespace {
template <class T>
void rms_norm_rows(const T * x, const T * w, T * y, int64_t rows, int64_t n, float eps) {
    at::parallel_for(0, rows, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const T * xr = x + r * n;
            T * yr = y + r * n;
            float ss = 0.f;
            for (int64_t i = 0; i < n; ++i) {
                float v = float(xr[i]);
                ss += v * v;
            }
            const float inv = 1.0f / std::sqrt(ss / float(n) + eps);
            // as the reference: normalise in fp32, round to the input dtype, then scale
            for (int64_t i = 0; i < n; ++i) yr[i] = T(float(w[i]) * float(T(float(xr[i]) * inv)));
        }
    });
}
}  // namespace

at::Tensor rms_norm(const at::Tensor & x, const at::Tensor & w, double eps) {
    VLLM_CHECK(x.dim() >= 1 && w.dim() == 1 && x.size(-1) == w.size(0), "rms_norm: x ", x.sizes(), " and weight ",
               w.sizes(), " do not match");
    VLLM_CHECK(x.scalar_type() == w.scalar_type(), "rms_norm: x is ", x.scalar_type(), " but weight is ",
               w.scalar_type());
    at::Tensor xc = x.contiguous(), wc = w.contiguous();
    at::Tensor y = at::empty_like(xc);
    const int64_t n = x.size(-1), rows = n == 0 ? 0 : xc.numel() / n;
    switch (x.scalar_type()) {
        case at::kFloat:
            rms_norm_rows(xc.data_ptr<float>(), wc.data_ptr<float>(), y.data_ptr<float>(), rows, n, float(eps));
            break;
        case at::kBFloat16:
            rms_norm_rows(xc.data_ptr<at::BFloat16>(), wc.data_ptr<at::BFloat16>(), y.data_ptr<at::BFloat16>(), rows,
                          n, float(eps));
            break;
        case at::kHalf:
            rms_norm_rows(xc.data_ptr<at::Half>(), wc.data_ptr<at::Half>(), y.data_ptr<at::Half>(), rows, n,
                          float(eps));
            break;
        default: fail("rms_norm: unsupported dtype ", x.scalar_type(), " (f32, f16, bf16)");
    }
    return y;
}

}  // namespace visionllm::kernels::cpu
