// Post-processing of Grounding DINO outputs as VisionLLM v2's detection evaluation does it (visionllmv2.md §8,
// decoders_det_pose.md §4.2: eval/eval_det.py post_process_det_gdino and post_process_instseg_gdino), and COCO
// run-length encoding as pycocotools' maskApi (rleEncode, rleToString, rleArea) computes it.
//
// Boxes: prob = sigmoid(logits[:, :num_classes]) flattened over queries x classes, torch.topk (so equal scores come
// out in torch.topk's order: the same ATen call does it here), query = index // num_classes, label = index %
// num_classes, cxcywh -> xyxy (cx - 0.5 w, ...) times (W, H, W, H) of the original image, all in float32.
// post_process_det_gdino then keeps score > threshold (default 0); post_process_instseg_gdino keeps all k.
// Masks: the chosen queries' [h, w] logits (h, w = padded H / 4, W / 4) -> F.interpolate to (4h, 4w) bilinear
// (align_corners=False) -> crop to the resized image (img_shape) -> F.interpolate to the original size -> sigmoid > 0.5.
// Goldens: tools/golden/detect_prepost.py.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "eval/mask.h"

namespace visionllm::gdino {

struct Detection {
    int64_t label = 0;            // index of the routing group (class) in the prompt
    int64_t query = 0;            // decoder query it came from
    float score = 0;              // sigmoid probability
    float box[4] = {0, 0, 0, 0};  // x0, y0, x1, y1 in original-image pixels (not clipped)
};

// threshold that keeps every top-k entry (post_process_instseg_gdino has none)
constexpr float kKeepAll = -std::numeric_limits<float>::infinity();

// logits [Q, L] or [1, Q, L] (one image; L = max_text_len, -inf past the valid groups), boxes [Q, 4] or [1, Q, 4]
// cxcywh in [0, 1] of the unpadded image; any floating dtype and device (computed in float32 there). The top
// min(topk, Q * num_classes) in descending score, then those with score > threshold. Bad arguments (num_classes < 1
// or > L, topk < 1, sizes < 1, mismatched shapes) throw visionllm::Error naming the argument.
std::vector<Detection> post_process_detections(const at::Tensor & logits, const at::Tensor & boxes, int64_t num_classes,
                                               int64_t topk, int64_t width, int64_t height, float threshold = 0.f);

// the queries of `dets` as an int64 CPU tensor, to pick their mask logits: pred_masks.index_select(0, ...)
at::Tensor detection_queries(const std::vector<Detection> & dets);

// mask logits [K, h, w] (or [1, K, h, w]) of the chosen queries, in the detections' order (h, w = padded H / 4,
// W / 4 with mask_stride 4) -> bool [K, height, width] on the logits' device. (resized_width, resized_height) is
// the image after the keep-ratio resize and must fit in (mask_stride * w, mask_stride * h). Masks are resized one
// at a time: besides the output, the peak is a float32 mask of the original size.
at::Tensor post_process_masks(const at::Tensor & mask_logits, int64_t resized_width, int64_t resized_height,
                              int64_t width, int64_t height, int64_t mask_stride = 4);

// COCO run-length encoding of a mask [h, w] (bool or integer, nonzero = inside), column-major as
// pycocotools.mask.encode on np.asfortranarray(mask) (eval/mask.h: rle_to_string, rle_area)
using Rle = eval::Rle;
Rle encode_rle(const at::Tensor & mask);

// post_process_masks then encode_rle, one mask at a time (no [K, height, width] tensor is kept)
std::vector<Rle> post_process_masks_rle(const at::Tensor & mask_logits, int64_t resized_width, int64_t resized_height,
                                        int64_t width, int64_t height, int64_t mask_stride = 4);

}  // namespace visionllm::gdino
