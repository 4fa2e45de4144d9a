// Rotary embedding, HF rotate_half convention: the pair (i, i + D/2) rotates
// together. Reads x through its strides (q/k are often slices of a fused qkv
// output) and writes a fresh contiguous tensor.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::kernels {

void check_rope_args(const at::Tensor & x, const at::Tensor & cos, const at::Tensor & sin) {
    VLLM_CHECK(x.dim() == 4, "rope: x must be [B, T, H, D], got ", x.sizes());
    const int64_t B = x.size(0), T = x.size(1), D = x.size(3);
    VLLM_CHECK(D % 2 == 0, "rope: head dim D must be even, got ", D);
    VLLM_CHECK(cos.sizes() == sin.sizes(), "rope: cos ", cos.sizes(), " and sin ", sin.sizes(), " differ in shape");
    const bool batched = cos.dim() == 3;
    VLLM_CHECK((cos.dim() == 2 || batched) && cos.size(-1) == D && cos.size(-2) == T &&
                   (!batched || cos.size(0) == B),
               "rope: cos/sin must be [B, T, D] or [T, D] for x ", x.sizes(), ", got ", cos.sizes());
    VLLM_CHECK(x.scalar_type() == cos.scalar_type() && x.scalar_type() == sin.scalar_type(), "rope: x is ",
               x.scalar_type(), " but cos/sin are ", cos.scalar_type(), "/", sin.scalar_type());
}

}  // namespace visionllm::kernels

namespace visionllm::kernels::cpu {

namespace {

struct RopeArgs {
    int64_t B, T, H, D;
    int64_t xs0, xs1, xs2;  // x's strides (elements) on B, T, H
    int64_t cs0;            // cos/sin stride on B: T*D, or 0 when shared by the batch
};

template <class T>
void rope_rows(const T * x, const T * cs, const T * sn, T * y, const RopeArgs & a) {
    const int64_t half = a.D / 2, rows = a.B * a.T * a.H;
    at::parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t h = r % a.H, t = (r / a.H) % a.T, b = r / (a.H * a.T);
            const T * __restrict xr = x + b * a.xs0 + t * a.xs1 + h * a.xs2;
            const T * __restrict c = cs + b * a.cs0 + t * a.D;
            const T * __restrict s = sn + b * a.cs0 + t * a.D;
            T * __restrict yr = y + r * a.D;  // a fresh tensor: aliases no input
            for (int64_t i = 0; i < half; ++i) {
                const float x0 = float(xr[i]), x1 = float(xr[i + half]);
                yr[i] = T(x0 * float(c[i]) - x1 * float(s[i]));
                yr[i + half] = T(x1 * float(c[i + half]) + x0 * float(s[i + half]));
            }
        }
    });
}

}  // namespace

at::Tensor rope(const at::Tensor & x, const at::Tensor & cos, const at::Tensor & sin) {
    check_rope_args(x, cos, sin);
    const int64_t B = x.size(0), T = x.size(1), H = x.size(2), D = x.size(3);
    const bool batched = cos.dim() == 3;
    at::Tensor xv = x.stride(3) == 1 ? x : x.contiguous();
    at::Tensor cc = cos.contiguous(), sc = sin.contiguous();
    at::Tensor y = at::empty({B, T, H, D}, x.options().memory_format(at::MemoryFormat::Contiguous));
    if (y.numel() == 0) return y;
    const RopeArgs a{B, T, H, D, xv.stride(0), xv.stride(1), xv.stride(2), batched ? T * D : 0};
    switch (x.scalar_type()) {
        case at::kFloat:
            rope_rows(xv.data_ptr<float>(), cc.data_ptr<float>(), sc.data_ptr<float>(), y.data_ptr<float>(), a);
            break;
        case at::kHalf:
            rope_rows(xv.data_ptr<at::Half>(), cc.data_ptr<at::Half>(), sc.data_ptr<at::Half>(),
                      y.data_ptr<at::Half>(), a);
            break;
        case at::kBFloat16:
            rope_rows(xv.data_ptr<at::BFloat16>(), cc.data_ptr<at::BFloat16>(), sc.data_ptr<at::BFloat16>(),
                      y.data_ptr<at::BFloat16>(), a);
            break;
        default: fail("rope: unsupported dtype ", x.scalar_type(), " (f32, f16, bf16)");
    }
    return y;
}

}  // namespace visionllm::kernels::cpu
