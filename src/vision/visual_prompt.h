// Visual prompts (boxes, points, scribbles, masks) rasterised to the binary
// region masks the VisionLLMv2 region encoder reads: one S x S mask on the
// global image squashed to S x S (336 for the released model), as the official
// region evaluations build them (reference doc §1.4 b):
//   box:   xyxy / (W, H, W, H) * S in float32, then datasets/utils.py boxes_to_masks:
//          clamp each coordinate to [0, S-1] and fill rows int(y1)..int(y2) x columns
//          int(x1)..int(x2), both inclusive;
//   mask:  F.interpolate(mask.float()[None, None], size=(S, S), mode='bilinear',
//          align_corners=False).bool(): any source pixel > 0 that reaches an output
//          pixel with a positive bilinear weight makes it inside;
//   point: a one-pixel mask at (floor(x), floor(y)) of the original image, then the mask path;
//   scribble: the polyline drawn 1 px wide (Bresenham, endpoints included) at the original
//          size, then the mask path.
// Point and scribble masks are never materialised at the original size.
//
// Bilinear weights follow torch's CPU kernel (UpSampleKernel.cpp) in float32:
// scale = float(in) / out, src = max(scale * (dst + 0.5) - 0.5, 0), i0 = min(floor(src), in-1),
// i1 = i0 + (i0 < in-1), lambda1 = src - i0; in == out copies. `scale * (dst + 0.5) - 0.5` is
// evaluated as one fused multiply-add, as the AVX2 / AVX-512 builds of torch do (GCC contracts
// it there); torch's baseline (ATEN_CPU_CAPABILITY=default) build rounds twice, which can differ
// by one output row/column where the exact source index is an integer (e.g. 112 -> 336).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/image.h"

namespace visionllm::vision {

struct VisualPrompt {
    enum class Kind { Box, Point, Scribble, Mask } kind = Kind::Box;
    // Box: x1,y1,x2,y2; Point: x,y; Scribble: x1,y1,x2,y2,... (polyline, >= 2 vertices);
    // all in ORIGINAL image pixels. Points and scribble vertices must lie in [0, W] x [0, H]
    // (a coordinate equal to W or H means the last pixel).
    std::vector<double> coords;
    // Mask: 1 channel, width x height equal to the original image; nonzero = inside
    io::Image mask;
};

// "box", "point", "scribble", "mask"
const char * visual_prompt_kind_name(VisualPrompt::Kind k);

// one prompt -> [S, S] float32 0/1 (CPU). Errors (visionllm::Error): wrong coordinate counts,
// non-finite values, x2 < x1 or y2 < y1, a box / point / scribble vertex outside the image, a mask
// whose size differs from the image's or with channels != 1, and an empty mask after
// rasterisation (a point or thin scribble can vanish when the image is larger than S, as in
// the reference, which drops such prompts).
at::Tensor rasterize_prompt(const VisualPrompt & p, int64_t image_width, int64_t image_height, int64_t S);
// every prompt -> [n, 1, S, S] float32 0/1 (the RegionEncoder's `masks`); errors name the
// prompt by its 1-based index ("visual prompt 2 (point): ...")
at::Tensor rasterize_prompts(const std::vector<VisualPrompt> & ps, int64_t w, int64_t h, int64_t S);

// CLI text: "x1,y1,x2,y2" / "x,y" / "x1,y1,x2,y2,..." (spaces around numbers allowed);
// errors quote the text. Only counts and finiteness are checked here; the geometry is checked
// against the image by rasterize_prompt.
VisualPrompt parse_box(const std::string & s);
VisualPrompt parse_point(const std::string & s);
VisualPrompt parse_scribble(const std::string & s);

}  // namespace visionllm::vision
