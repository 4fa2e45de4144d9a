// VisionLLM v2's Grounding DINO (OVGroundingDinoForObjectDetection in
// visionllmv2/model/grounding_dino/modeling_ov_grounding_dino_mask_dn.py, "OV"), inference only: its forward_test
// path (patch2query text features, Swin backbone, input projections and sine position embeddings, the 6-layer
// fusion / text-enhancer / deformable encoder, the mask FPN, two-stage query selection, the 6-layer decoder with
// iterative box refinement, the contrastive class head, boxes and masks per decoder layer). The modules are in
// modules.h (one class per reference module); visionllmv2.md §6.1 and decoders_det_pose.md §1.5-§1.9, §4.2.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "llm/llama.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

namespace visionllm::gdino {

struct GroundingDinoOutput {
    // per decoder layer (layers asked for; the last one always), fp32:
    std::vector<at::Tensor> logits;  // [B, num_queries, max_text_len], -inf on padded text
    std::vector<at::Tensor> boxes;   // [B, num_queries, 4] cx, cy, w, h in [0,1] of the unpadded image
    std::vector<at::Tensor> masks;   // [B, num_queries, H/4, W/4] mask logits (empty unless asked)
    std::vector<int64_t> layers;     // the decoder layer of each entry above
    int64_t num_text = 0;            // valid text tokens (routing groups), the most over the batch
    // with ForwardOptions::intermediates, by the golden's names (tools/golden/gdino.py run_reference):
    // text_features, valid_ratios, enc_vision, enc_text, mask_features (when masks), enc_class_max, topk_index,
    // init_reference, dec_hidden.{l}, dec_reference.{l}; backbone.stage{1..4} when the backbone ran
    std::map<std::string, at::Tensor> intermediates;
};

struct ForwardOptions {
    bool all_layers = false;     // logits/boxes(/masks) of every decoder layer, not just the last
    bool masks = false;          // run the mask branch
    bool intermediates = false;  // fill GroundingDinoOutput::intermediates
    // [B, num_queries] int64: the two-stage selection to use instead of the top-k of the encoder scores (tests:
    // a bf16 run against an fp32 golden whose top-k order bf16 rounding would change); undefined: computed
    at::Tensor selection;
};

class OVGroundingDinoForObjectDetection {
public:
    // w: the view "gdino."; the compute device and dtype are the loader's (f32, or bf16 with fp32 softmaxes,
    // deformable sampling, sine embeddings and box math)
    OVGroundingDinoForObjectDetection(const GroundingDinoConfig & c, const WeightView & w, const llm::Loader & load);
    ~OVGroundingDinoForObjectDetection();
    OVGroundingDinoForObjectDetection(OVGroundingDinoForObjectDetection &&) noexcept;
    OVGroundingDinoForObjectDetection & operator=(OVGroundingDinoForObjectDetection &&) noexcept;

    // pixel_values [B, 3, H, W] (normalised, zero-padded to a multiple of 32); pixel_mask [B, H, W] bool,
    // true = valid; text_query [B, T, num_embs, l_hidden] (the LLM's post-norm hidden states at the [EMB]
    // positions, one group per routing token); text_query_mask [B, T] bool, true = valid. 1 <= T <= max_text_len,
    // every batch item with at least one valid group. Bad arguments throw visionllm::Error naming them.
    GroundingDinoOutput forward(const at::Tensor & pixel_values, const at::Tensor & pixel_mask,
                                const at::Tensor & text_query, const at::Tensor & text_query_mask,
                                const ForwardOptions & opt = {}) const;

    // the same from the backbone's maps (stage1..stage4 NCHW, as SwinBackbone::forward returns them) instead of
    // the pixels: pixel_mask [B, H, W] still gives the padding
    GroundingDinoOutput forward_features(const std::vector<at::Tensor> & backbone_maps, const at::Tensor & pixel_mask,
                                         const at::Tensor & text_query, const at::Tensor & text_query_mask,
                                         const ForwardOptions & opt = {}) const;

    // the backbone alone: pixel_values [B, 3, H, W] -> stage1..stage4
    std::vector<at::Tensor> backbone(const at::Tensor & pixel_values) const;

    const GroundingDinoConfig & config() const;
    c10::Device device() const;
    at::ScalarType dtype() const;

private:
    struct Impl;  // the modules (modules.h)
    std::unique_ptr<Impl> m_;
};

}  // namespace visionllm::gdino
