#include "vision/region_encoder.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>

#include "visionllm/error.h"

namespace visionllm::vision {

namespace {

std::string shape_of(const at::Tensor & t) {
    if (!t.defined()) return "(undefined)";
    std::ostringstream s;
    s << t.sizes();
    return s.str();
}

// splitmix64: a small, portable generator (the subsample must not depend on the standard library)
struct SplitMix64 {
    uint64_t state;
    uint64_t next() {
        uint64_t z = (state += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    // uniform in [0, n) by rejection
    uint64_t below(uint64_t n) {
        const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
        uint64_t r;
        do r = next();
        while (r >= limit);
        return r % n;
    }
};

// grid_sample's source coordinate of pixel index i of an n-pixel axis on a size-pixel map:
// p = i / n (float32, as nonzero() / divisor), g = 2p - 1, then unnormalize (align_corners=False)
struct AxisWeights {
    int64_t lo;      // first cell (may be -1 or size-1 .. the second may be out of range)
    double w_lo, w_hi;
};

std::vector<AxisWeights> axis_weights(int64_t n, int64_t size) {
    std::vector<AxisWeights> a(n);
    for (int64_t i = 0; i < n; ++i) {
        const float p = static_cast<float>(i) / static_cast<float>(n);
        const float g = 2.f * p - 1.f;
        const float src = ((g + 1.f) * static_cast<float>(size) - 1.f) / 2.f;
        const float lo = std::floor(src);
        const float t = src - lo;
        a[i] = {static_cast<int64_t>(lo), 1.0 - double(t), double(t)};
    }
    return a;
}

}  // namespace

// ---------------------------------------------------------------- LayerNorm2d

at::Tensor LayerNorm2d::forward(const at::Tensor & x) const {
    VLLM_CHECK(x.dim() == 4 && x.size(1) == weight_.size(0), "LayerNorm2d: expected [n, ", weight_.size(0),
               ", h, w], got ", shape_of(x));
    const at::Tensor u = x.mean(1, /*keepdim=*/true);
    const at::Tensor d = x - u;
    const at::Tensor s = d.pow(2).mean(1, /*keepdim=*/true);
    const at::Tensor y = d / at::sqrt(s + eps_);
    return weight_.view({-1, 1, 1}) * y + bias_.view({-1, 1, 1});
}

// ---------------------------------------------------------------- point weights

at::Tensor region_point_weights(const at::Tensor & mask, int64_t h, int64_t w, int64_t max_points, uint64_t seed,
                                int64_t level, int64_t * count) {
    VLLM_CHECK(mask.defined() && mask.dim() == 2 && mask.device().is_cpu(),
               "region_point_weights: mask must be a 2-D CPU tensor, got ", shape_of(mask));
    VLLM_CHECK(h > 0 && w > 0, "region_point_weights: the map size must be positive, got ", h, "x", w);
    VLLM_CHECK(max_points >= 0, "region_point_weights: max_points must be >= 0, got ", max_points);
    const int64_t H = mask.size(0), W = mask.size(1);
    const at::Tensor m = (mask != 0).contiguous();
    const bool * mp = m.data_ptr<bool>();

    // the nonzero pixels in row-major (ascending flat index) order, as torch.nonzero lists them
    std::vector<int64_t> idx;
    for (int64_t i = 0; i < H * W; ++i) {
        if (mp[i]) idx.push_back(i);
    }
    if (max_points > 0 && int64_t(idx.size()) > max_points) {
        // partial Fisher-Yates: a uniform max_points-subset, then sorted as the reference sorts
        SplitMix64 rng{seed ^ (0xD1B54A32D192ED03ULL * uint64_t(level + 1))};
        const uint64_t n = idx.size();
        for (uint64_t k = 0; k < uint64_t(max_points); ++k) {
            const uint64_t j = k + rng.below(n - k);
            std::swap(idx[k], idx[j]);
        }
        idx.resize(max_points);
        std::sort(idx.begin(), idx.end());
    }
    *count = int64_t(idx.size());

    const std::vector<AxisWeights> ax = axis_weights(W, w), ay = axis_weights(H, h);
    std::vector<double> acc(h * w, 0.0);
    for (int64_t i : idx) {
        const AxisWeights & wy = ay[i / W];
        const AxisWeights & wx = ax[i % W];
        const int64_t ys[2] = {wy.lo, wy.lo + 1}, xs[2] = {wx.lo, wx.lo + 1};
        const double wys[2] = {wy.w_lo, wy.w_hi}, wxs[2] = {wx.w_lo, wx.w_hi};
        for (int a = 0; a < 2; ++a) {
            if (ys[a] < 0 || ys[a] >= h) continue;  // zeros padding
            for (int b = 0; b < 2; ++b) {
                if (xs[b] < 0 || xs[b] >= w) continue;
                acc[ys[a] * w + xs[b]] += wys[a] * wxs[b];
            }
        }
    }
    at::Tensor out = at::empty({h * w}, at::kFloat);
    float * o = out.data_ptr<float>();
    for (int64_t i = 0; i < h * w; ++i) o[i] = static_cast<float>(acc[i]);
    return out;
}

// ---------------------------------------------------------------- RegionEncoder

RegionEncoder::RegionEncoder(const WeightView & w, int64_t vis_hidden, int64_t llm_hidden, const llm::Loader & load)
    : vis_hidden_(vis_hidden), llm_hidden_(llm_hidden), dtype_(load.dtype), device_(load.device) {
    VLLM_CHECK(vis_hidden > 0 && llm_hidden > 0, "region encoder (", w.prefix(),
               "): vis_hidden and llm_hidden must be positive, got ", vis_hidden, " and ", llm_hidden);
    llm::Loader ld = load;
    if (ld.dtype == at::ScalarType::Undefined) ld.dtype = w.get("mask_embedding.0.weight").scalar_type();
    dtype_ = ld.dtype;
    VLLM_CHECK(at::isFloatingType(dtype_), "region encoder (", w.prefix(), "): compute dtype must be floating, got ",
               c10::toString(dtype_));
    const int64_t c1 = kHidden / 4, c2 = kHidden;
    conv0_w_ = ld(w, "mask_embedding.0.weight", {c1, 4, kPatch / 2, kPatch / 2});
    conv0_b_ = ld(w, "mask_embedding.0.bias", {c1});
    ln1_ = LayerNorm2d(ld(w, "mask_embedding.1.weight", {c1}), ld(w, "mask_embedding.1.bias", {c1}), 1e-6);
    conv3_w_ = ld(w, "mask_embedding.3.weight", {c2, c1, 2, 2});
    conv3_b_ = ld(w, "mask_embedding.3.bias", {c2});
    ln4_ = LayerNorm2d(ld(w, "mask_embedding.4.weight", {c2}), ld(w, "mask_embedding.4.bias", {c2}), 1e-6);
    conv6_w_ = ld(w, "mask_embedding.6.weight", {vis_hidden, c2, 1, 1});
    conv6_b_ = ld(w, "mask_embedding.6.bias", {vis_hidden});
    up_dim_.weight = ld(w, "up_dim.weight", {llm_hidden, vis_hidden});
    up_dim_.bias = ld(w, "up_dim.bias", {llm_hidden});
}

at::Tensor RegionEncoder::embed_masks(const at::Tensor & x) const {
    VLLM_CHECK(x.dim() == 4 && x.size(1) == 4 && x.size(2) % kPatch == 0 && x.size(3) % kPatch == 0,
               "region encoder: mask_embedding input must be [n, 4, S, S] with S divisible by ", kPatch, ", got ",
               shape_of(x));
    const int64_t k = kPatch / 2;
    at::Tensor y = at::conv2d(x, conv0_w_, conv0_b_, {k, k});
    y = at::gelu(ln1_.forward(y));
    y = at::conv2d(y, conv3_w_, conv3_b_, {2, 2});
    y = at::gelu(ln4_.forward(y));
    return at::conv2d(y, conv6_w_, conv6_b_);
}

at::Tensor RegionEncoder::forward(const at::Tensor & images, const at::Tensor & masks,
                                  const std::vector<at::Tensor> & features, int64_t max_points, uint64_t seed) const {
    // ---- argument checks, each naming the argument
    VLLM_CHECK(images.defined() && images.dim() == 4 && images.size(1) == 3 && images.size(2) == images.size(3),
               "region encoder: images must be [n, 3, S, S], got ", shape_of(images));
    VLLM_CHECK(at::isFloatingType(images.scalar_type()), "region encoder: images must be floating point, got ",
               c10::toString(images.scalar_type()));
    const int64_t n = images.size(0), S = images.size(2);
    VLLM_CHECK(S >= kPatch && S % kPatch == 0, "region encoder: images: S = ", S,
               " must be a positive multiple of the patch size ", kPatch);
    VLLM_CHECK(masks.defined() && masks.dim() == 4 && masks.size(0) == n && masks.size(1) == 1 &&
                   masks.size(2) == S && masks.size(3) == S,
               "region encoder: masks must be [", n, ", 1, ", S, ", ", S, "] to match images ", shape_of(images),
               ", got ", shape_of(masks));
    VLLM_CHECK(features.size() == size_t(kLevels), "region encoder: features must hold ", kLevels,
               " levels (CLIP hidden_states[-3:]), got ", features.size());
    const int64_t h = S / kPatch, w = S / kPatch, P = h * w, C = vis_hidden_;
    for (size_t l = 0; l < features.size(); ++l) {
        const at::Tensor & f = features[l];
        VLLM_CHECK(f.defined() && f.dim() == 3 && (f.size(0) == n || f.size(0) == 1) && f.size(1) == P &&
                       f.size(2) == C,
                   "region encoder: features[", l, "] must be [", n, " or 1, ", P, ", ", C, "] (P = (", S, "/",
                   kPatch, ")^2 patches without CLS, C = vis_hidden), got ", shape_of(f));
        VLLM_CHECK(at::isFloatingType(f.scalar_type()), "region encoder: features[", l,
                   "] must be floating point, got ", c10::toString(f.scalar_type()));
    }
    VLLM_CHECK(max_points >= 0, "region encoder: max_points must be >= 0 (0 = all mask pixels), got ", max_points);

    const at::Tensor masks_cpu = masks.to(at::kCPU);
    if (masks_cpu.scalar_type() != at::kBool) {
        VLLM_CHECK(((masks_cpu == 0) | (masks_cpu == 1)).all().item<bool>(),
                   "region encoder: masks must hold only 0 and 1 values");
    }
    if (n == 0) return at::empty({0, llm_hidden_}, at::TensorOptions().dtype(dtype_).device(device_));

    // ---- mask embedding: cat(image, mask) in the compute dtype (the reference casts the mask to the image's)
    const at::Tensor img = images.to(device_, dtype_);
    const at::Tensor msk = masks.to(device_, dtype_);
    at::Tensor M = embed_masks(at::cat({img, msk}, 1));  // [n, C, h, w]

    // ---- point weights per region and level (one set reused when no level subsamples)
    const at::Tensor inside = masks_cpu.select(1, 0);
    std::vector<at::Tensor> weights(kLevels);
    std::vector<at::Tensor> counts(kLevels);
    for (int64_t l = 0; l < kLevels; ++l) {
        if (l > 0 && max_points == 0) {
            weights[l] = weights[0];
            counts[l] = counts[0];
            continue;
        }
        at::Tensor wl = at::empty({n, h * w}, at::kFloat);
        at::Tensor cl = at::empty({n}, at::kFloat);
        float * cp = cl.data_ptr<float>();
        for (int64_t i = 0; i < n; ++i) {
            int64_t cnt = 0;
            wl[i].copy_(region_point_weights(inside[i], h, w, max_points, seed, l, &cnt));
            cp[i] = float(std::max<int64_t>(cnt, 1));  // an empty mask: all weights 0 -> 0 (nan_to_num)
        }
        weights[l] = wl.to(device_).unsqueeze(-1);  // [n, h*w, 1]
        counts[l] = cl.to(device_).unsqueeze(-1);   // [n, 1]
    }

    // ---- accumulate the levels, pool (fp32, as grid_sample runs on M.float()), project
    std::vector<at::Tensor> pooled;
    pooled.reserve(kLevels);
    for (int64_t l = 0; l < kLevels; ++l) {
        const at::Tensor f = features[l].reshape({features[l].size(0), h, w, C}).permute({0, 3, 1, 2});
        M = M + f.to(device_, dtype_);
        const at::Tensor sum = at::bmm(M.to(at::kFloat).reshape({n, C, h * w}), weights[l]).squeeze(-1);  // [n, C]
        pooled.push_back((sum / counts[l]).to(dtype_));
    }
    const at::Tensor out = up_dim_.forward(at::stack(pooled));  // [3, n, llm_hidden]
    return out.mean(0);
}

}  // namespace visionllm::vision
