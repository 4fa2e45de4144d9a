// transformers SwinBackbone (models/swin/modeling_swin.py, 4.34 .. 4.40: the Grounding DINO backbone inside
// VisionLLM v2), inference only. One class per reference module, weights bound by its state-dict names:
//   SwinEmbeddings    Conv2d(k = stride = patch) on the input padded to a patch multiple, then LayerNorm
//   SwinSelfAttention window attention with the relative position bias (q/k/v stacked into one GEMM at load,
//                     the bias gathered once at load into [heads, ws^2, ws^2])
//   SwinLayer         pre-LN block: pad to window multiples, cyclic shift, windows, attention (+ the -100 shift
//                     mask), reverse, residual; LayerNorm + GELU MLP + residual
//   SwinPatchMerging  pad to even sizes, concat of the 2x2 neighbours in the reference order, LayerNorm, Linear
//   SwinStage         the blocks (even: no shift, odd: shift ws/2) and the merging of all but the last stage
//   SwinBackbone      the stage outputs before downsampling through hidden_states_norms.<stage>, as NCHW maps
// SwinBackbone calls its encoder with always_partition=True, so the window stays window_size and the odd blocks
// keep shifting even when a stage is smaller than the window (the clamp in SwinLayer.set_shift_and_window_size
// is skipped): the input is padded up to one window and the shift mask applies.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "llm/llama.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

namespace visionllm::gdino {

// nn.Linear / nn.LayerNorm with their weights bound by name (bias may be undefined)
struct SwinLinear {
    at::Tensor weight, bias;
    at::Tensor forward(const at::Tensor & x) const;
};

struct SwinLayerNorm {
    at::Tensor weight, bias;
    double eps = 1e-5;
    at::Tensor forward(const at::Tensor & x) const;
};

class SwinEmbeddings {
public:
    SwinEmbeddings(const SwinConfig & c, const WeightView & w, const llm::Loader & load);
    // pixel_values [B, C, H, W] -> tokens [B, Hp*Wp, embed_dim] and the grid (Hp, Wp) = ceil((H, W) / patch)
    std::pair<at::Tensor, std::pair<int64_t, int64_t>> forward(const at::Tensor & pixel_values) const;

private:
    int64_t patch_, channels_, embed_dim_;
    at::Tensor projection_weight_;  // [embed_dim, C * patch * patch] (the conv as a GEMM)
    at::Tensor projection_bias_;
    SwinLayerNorm norm_;
};

// where each window slot reads its token and where each token finds its window slot, for one grid (H, W), one
// window size and one shift; built once per (H, W) per stage and cached
struct SwinWindowLayout {
    int64_t height = 0, width = 0;    // the tokens' grid
    int64_t windows_h = 0, windows_w = 0;  // padded grid / window
    int64_t shift = 0;
    at::Tensor gather;     // [nW * ws^2] int64: the token of each window slot (padding slots point at token 0)
    at::Tensor pad_slots;  // [n] int64: the slots that are padding (zeroed after the gather); undefined if none
    at::Tensor scatter;    // [H * W] int64: the window slot of each token
    // shifted layouts: the -100 mask of the last window row [nWw, T, T] and of the last window column without
    // its corner [nWh - 1, T, T] (every other window sees one region only)
    at::Tensor mask_last_row, mask_last_col;
};

class SwinSelfAttention {
public:
    SwinSelfAttention(const SwinConfig & c, int64_t dim, int64_t heads, const WeightView & w,
                      const llm::Loader & load);
    // windows [B * nW, T, dim] (T = ws^2) -> the context before attention.output as a strided
    // [B * nW * T, heads, head_dim] view (the caller's reverse gather makes it contiguous)
    at::Tensor forward(const at::Tensor & windows, const SwinWindowLayout & layout, int64_t batch) const;

private:
    int64_t heads_, head_dim_, window_;
    SwinLinear qkv_;               // query, key, value stacked into [3 * dim, dim]; 1/sqrt(head_dim) folded into q
    at::Tensor relative_bias_;     // [heads, T, T]: relative_position_bias_table gathered at load
};

class SwinLayer {
public:
    SwinLayer(const SwinConfig & c, int64_t dim, int64_t heads, int64_t shift, const WeightView & w,
              const llm::Loader & load);
    // x [B, H*W, dim] -> [B, H*W, dim]; `layout` is this block's (its shift) for the grid (H, W)
    at::Tensor forward(const at::Tensor & x, const SwinWindowLayout & layout) const;
    int64_t shift() const { return shift_; }

private:
    int64_t dim_, shift_;
    SwinLayerNorm layernorm_before_, layernorm_after_;
    SwinSelfAttention attention_;
    SwinLinear attention_output_;   // attention.output.dense
    SwinLinear intermediate_;       // intermediate.dense (bias added with the GELU)
    SwinLinear output_;             // output.dense
};

class SwinPatchMerging {
public:
    SwinPatchMerging(const SwinConfig & c, int64_t dim, const WeightView & w, const llm::Loader & load);
    // x [B, H*W, dim] -> [B, ceil(H/2) * ceil(W/2), 2 * dim]
    at::Tensor forward(const at::Tensor & x, int64_t height, int64_t width) const;

private:
    int64_t dim_;
    SwinLayerNorm norm_;
    SwinLinear reduction_;
};

class SwinStage {
public:
    SwinStage(const SwinConfig & c, int64_t index, const WeightView & w, const llm::Loader & load);
    // x [B, H*W, dim] -> the hidden states before downsampling [B, H*W, dim]
    at::Tensor forward(const at::Tensor & x, int64_t height, int64_t width) const;
    // the merging after this stage (absent on the last one)
    const SwinPatchMerging * downsample() const { return downsample_.get(); }
    int64_t dim() const { return dim_; }

private:
    struct Layouts {
        SwinWindowLayout plain, shifted;
    };
    std::shared_ptr<const Layouts> layouts(int64_t height, int64_t width) const;

    int64_t dim_, window_, shift_;
    c10::Device device_;
    at::ScalarType dtype_;
    std::vector<SwinLayer> blocks_;
    std::unique_ptr<SwinPatchMerging> downsample_;
    // (H, W) -> layouts; bounded, guarded (forward is const and may run on several threads)
    mutable std::shared_ptr<std::mutex> cache_mutex_;
    mutable std::map<std::pair<int64_t, int64_t>, std::shared_ptr<const Layouts>> cache_;
};

class SwinBackbone {
public:
    // w: the view of the backbone's weights, e.g. "gdino.model.backbone.conv_encoder.model."
    SwinBackbone(const SwinConfig & c, const WeightView & w, const llm::Loader & load);
    // pixel_values [B, num_channels, H, W] (any float dtype; run in the loader's dtype and device) -> one contiguous
    // NCHW feature map per out_features entry (stage1..stage4 for VisionLLM v2: strides 4, 8, 16, 32,
    // ceil-divided), after hidden_states_norms.<stage>. Stages after the last one asked for are not run.
    std::vector<at::Tensor> forward(const at::Tensor & pixel_values) const;
    // channels of each returned map (96, 192, 384, 768 for Swin-T)
    const std::vector<int64_t> & channels() const { return channels_; }
    const std::vector<std::string> & out_features() const { return out_features_; }

private:
    SwinConfig config_;
    SwinEmbeddings embeddings_;
    std::vector<SwinStage> stages_;
    std::vector<std::string> out_features_;
    std::vector<int64_t> out_levels_;  // per out feature: 0 = stem, i = stage i
    std::vector<SwinLayerNorm> norms_;  // hidden_states_norms, per out feature
    std::vector<int64_t> channels_;
};

// the tensors SwinBackbone reads, names relative to its view, in state_dict order; the relative_position_index
// buffers (int64 [ws^2, ws^2]) are optional: computed when absent, used (checked) when present
std::vector<ExpectedTensor> swin_backbone_expected_weights(const SwinConfig & c);

}  // namespace visionllm::gdino
