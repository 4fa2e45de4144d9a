// VisionLLMv2 region encoder (visionllmv2/model/region_encoder.py, built with
// hidden_dim=256, embed_dim=vis_hidden, out_dim=llm_hidden, patch_size=14,
// mask_pool_type='grid_sample'; reference doc §3), inference only:
//   M = mask_embedding(cat(image, mask))        [n, C, S/14, S/14]
//   for each of the 3 feature levels l (CLIP hidden_states[-3:], CLS dropped):
//       M = M + F_l                             (accumulates over the levels)
//       o_l = up_dim(mean over the mask's pixels p of bilinear_sample(M, p))
//   out = mean_l o_l                            [n, llm_hidden]
// A mask pixel (y, x) of the S x S mask samples M as grid_sample does with the grid
// 2 * (x/S, y/S) - 1, bilinear, zeros padding, align_corners=False (M in fp32, the pooled
// features cast back to the compute dtype). Since the pooled value is linear in M, the
// mean over the points is computed as one weighted sum over M's cells (the point
// weights accumulated per cell), not by materialising [C, points] samples.
//
// Sampling: the official code keeps at most num_points mask pixels, drawn at random
// (torch.multinomial without replacement, a fresh draw per level), and all of them
// when the mask has <= num_points. num_points is 2304 (48x48) at the official HEAD
// (148cc93, set by commit 5a82d82 "update release", 2024-10-12); the first release
// (309b1ec, 2024-06-13) had 12544 (112x112). Here the default uses every mask pixel
// (identical to the reference whenever the mask has <= num_points pixels); max_points > 0
// keeps a seeded uniform subsample of that many pixels per level instead.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <vector>

#include "llm/llama.h"
#include "visionllm/checkpoint.h"

namespace visionllm::vision {

// detectron2 / ConvNeXt LayerNorm2d: normalises [n, C, h, w] over the channels
// (mean, biased variance, eps 1e-6), then weight[c] * x + bias[c]; same op order as the reference
class LayerNorm2d {
public:
    LayerNorm2d() = default;
    LayerNorm2d(at::Tensor weight, at::Tensor bias, double eps = 1e-6)
        : weight_(std::move(weight)), bias_(std::move(bias)), eps_(eps) {}
    at::Tensor forward(const at::Tensor & x) const;

private:
    at::Tensor weight_, bias_;
    double eps_ = 1e-6;
};

class RegionEncoder {
public:
    static constexpr int64_t kPatch = 14;     // CLIP patch size: M is (S/14) x (S/14)
    static constexpr int64_t kHidden = 256;   // hidden_dim (mask_embedding.3/4/6 input); .0/.1 have kHidden/4
    static constexpr int64_t kLevels = 3;     // CLIP hidden_states[-3:]

    // w: a view at "region_encoder."; keys mask_embedding.{0,1,3,4,6}.{weight,bias}, up_dim.{weight,bias}
    // (vision/layout.cpp region_encoder_expected_weights); vis_hidden = C, llm_hidden = out.
    // Computes in load.dtype on load.device.
    RegionEncoder(const WeightView & w, int64_t vis_hidden, int64_t llm_hidden, const llm::Loader & load);

    // images [n,3,S,S] (the CLIP-normalised global tile, one per region), masks [n,1,S,S]
    // (values 0/1, any dtype incl. bool), features: 3 tensors [n,P,C] or [1,P,C] (broadcast to n),
    // P = (S/14)^2, the CLIP hidden states of the global tile without CLS, shallowest level first.
    // max_points: 0 = pool over every mask pixel; > 0 = at most that many pixels per region and
    // level, a uniform sample without replacement drawn from `seed` (deterministic; a region's
    // draw depends only on seed, level and its mask, not on its position in the batch).
    // Returns [n, llm_hidden] in the compute dtype. An empty mask gives up_dim(0) = up_dim.bias
    // (the reference's nan_to_num). Inputs may live on any device; S must be divisible by 14.
    at::Tensor forward(const at::Tensor & images, const at::Tensor & masks, const std::vector<at::Tensor> & features,
                       int64_t max_points = 0, uint64_t seed = 0) const;

    // the mask-embedding CNN alone: [n,4,S,S] -> [n, C, S/14, S/14]
    at::Tensor embed_masks(const at::Tensor & x) const;

    int64_t vis_hidden() const { return vis_hidden_; }
    int64_t llm_hidden() const { return llm_hidden_; }
    at::ScalarType dtype() const { return dtype_; }
    c10::Device device() const { return device_; }

private:
    int64_t vis_hidden_, llm_hidden_;
    at::ScalarType dtype_;
    c10::Device device_;
    at::Tensor conv0_w_, conv0_b_, conv3_w_, conv3_b_, conv6_w_, conv6_b_;
    LayerNorm2d ln1_, ln4_;
    llm::Linear up_dim_;
};

// The pooling weights of one S x S mask on an h x w map: [h*w] float32 (CPU) with
//   sum_cells weights[cell] * M[:, cell] == sum over the chosen mask pixels of
//   grid_sample(M, 2 * (x/S, y/S) - 1, bilinear, zeros, align_corners=False)
// and *count = the number of chosen pixels (divide by it for the mean). mask: [S, S] on the CPU,
// nonzero = inside. max_points / seed / level select the subsample as RegionEncoder::forward does.
at::Tensor region_point_weights(const at::Tensor & mask, int64_t h, int64_t w, int64_t max_points, uint64_t seed,
                                int64_t level, int64_t * count);

}  // namespace visionllm::vision
