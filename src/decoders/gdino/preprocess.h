// Detection-image preprocessing as VisionLLM v2's detection evaluation does it (visionllmv2.md §6.1, decoders_det_pose.md
// §4.2): the mmdet 2.x test pipeline of datasets/coco_llava.py, then util/misc.py nested_tensor_from_tensor_list
// (size_divisibility=32) and the model's pixel_mask = pixel_values[:, 0] != 0:
//
//   LoadImageFromFile (cv2, BGR uint8)
//   -> Resize(img_scale=(1333, 800), keep_ratio=True): mmcv.imrescale, i.e. rescale_size() below, then
//      cv2.resize(img, (w, h), interpolation=INTER_LINEAR) on the uint8 pixels            -> img_shape (h, w)
//   -> Normalize(mean, std, to_rgb=True): mmcv.imnormalize_ = float32 copy, BGR->RGB, cv2.subtract(img, mean)
//      (float32), cv2.multiply(img, 1 / std) (computed in float64, stored as float32)
//   -> Pad(size_divisor=1) (nothing), ImageToTensor ([3, h, w])
//   -> zero padding on the bottom and right to multiples of 32, pixel_mask = (pixel_values[:, 0] != 0)
//
// The resize is OpenCV 4.10's cv::resize for CV_8U INTER_LINEAR, reproduced bit for bit without OpenCV
// (imgproc/src/resize.cpp; IPP is not used for 8-bit linear, whose result would not be exact):
//   - the output size equal to the input: a copy;
//   - exactly half the size on both axes (1/inv_scale is exactly 2): INTER_AREA's fast path, (a+b+c+d+2) >> 2;
//   - otherwise the classic separable fixed-point path: source coordinate (d + 0.5) * scale - 0.5 in double, cast
//     to float, floor; weights round((1 - f) * 2048) and round(f * 2048) (INTER_RESIZE_COEF_BITS 11, ties to even),
//     the horizontal pass in int32 (edge pixels replicated), the vertical pass as the SIMD kernel computes it:
//     (((b0 * (h0 >> 4)) >> 16) + ((b1 * (h1 >> 4)) >> 16) + 2) >> 2 (the scalar tail uses the same formula).
// It is not cv::INTER_LINEAR_EXACT (resize_bitExact), which mmcv does not ask for. Goldens: tools/golden/detect_prepost.py.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>

#include "io/image.h"

namespace visionllm::gdino {

struct DetectionImageConfig {
    int64_t max_long = 1333;  // mmdet img_scale (1333, 800), keep_ratio: the long side at most 1333,
    int64_t max_short = 800;  // the short side at most 800, as large as possible within both
    int64_t size_divisor = 32;  // nested_tensor_from_tensor_list's size_divisibility
    // img_norm_cfg, per RGB channel (mmdet stores them as float32): ImageNet's mean/std x 255
    std::array<float, 3> mean{123.675f, 116.28f, 103.53f};
    std::array<float, 3> std{58.395f, 57.12f, 57.375f};
};

struct DetectionImage {
    at::Tensor pixel_values;  // [1, 3, Hp, Wp] f32 (CPU), normalised RGB, zero padded to the divisor
    at::Tensor pixel_mask;    // [1, Hp, Wp] bool (CPU), true = valid (the reference's pixel_values[:, 0] != 0 quirk)
    int64_t width = 0, height = 0;                  // the original image (ori_shape)
    int64_t resized_width = 0, resized_height = 0;  // after the keep-ratio resize (img_shape)
};

// mmcv.rescale_size((width, height), (max_long, max_short)): scale = min(max_long / long side, max_short / short
// side) in double, new size (int(width * scale + 0.5), int(height * scale + 0.5)). Returns {width, height}.
// Throws visionllm::Error when a side would become 0 (an image more elongated than about 1:2666 with the
// defaults; the reference fails there too, in cv2.resize).
std::array<int64_t, 2> rescale_size(int64_t width, int64_t height, int64_t max_long, int64_t max_short);

// cv2.resize(src, (width, height), interpolation=cv2.INTER_LINEAR) of OpenCV 4.10, bit-exact, for 1-, 3- or
// 4-channel 8-bit images. Works on any size the io limits allow (kMaxImageSide per side); the only memory besides
// the output is two rows of int32.
io::Image resize_linear(const io::Image & src, int64_t width, int64_t height);

// The whole pipeline on an RGB (or gray, replicated) image as io::read_image returns it. Bad configs (sizes < 1,
// std 0) and empty images throw visionllm::Error naming them.
DetectionImage preprocess_detection(const io::Image & image, const DetectionImageConfig & cfg = {});

}  // namespace visionllm::gdino
