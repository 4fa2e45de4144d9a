// The tensors of VisionLLM v2's Grounding DINO (OVGroundingDinoForObjectDetection) as its state_dict() names them,
// relative to "gdino.", with their shapes for a config.
#pragma once

#include <vector>

#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

namespace visionllm::gdino {

// Every key of the official state_dict(), Swin buffers included. Modules shared across decoder layers appear under
// every alias the reference registers them by (bbox_embed.{i} and model.decoder.bbox_embed.{i}: one head when
// decoder_bbox_embed_share; mask_embed.{i}: always one head). The first alias in state_dict() order is required, the
// others optional: a .bin checkpoint keeps them all, save_pretrained's safetensors dedup keeps the first.
//   model.decoder.bbox_embed.0 (shared) or model.decoder.bbox_embed.{i} (not shared): required
//   bbox_embed.{i}, model.decoder.bbox_embed.{i > 0} (shared): optional aliases
//   mask_embed.0 required, mask_embed.{i > 0} optional
// model.mask_embed is a separate head (training-time encoder-output masks), unused at inference but saved.
std::vector<ExpectedTensor> gdino_expected_weights(const GroundingDinoConfig & c);

// the Swin stages' channels: embed_dim * 2^i
std::vector<int64_t> swin_channels(const SwinConfig & c);

}  // namespace visionllm::gdino
