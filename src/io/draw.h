// Drawing results onto an image (the CLI's --draw): boxes with "label score" captions and translucent instance
// masks. OpenCV's imgproc does the rasterising, inside draw.cpp only (the I/O layer; nothing in inference uses it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/image.h"

namespace visionllm::io {

struct DrawBox {
    float box[4] = {0, 0, 0, 0};  // x0, y0, x1, y1 in pixels
    std::string caption;          // e.g. "cat 0.87"
    int64_t color_index = 0;      // picks the colour (the class), stable across images
    // optional mask: COCO column-major runs over the image (starting with a zero run), empty for none
    std::vector<uint32_t> mask_runs;
};

// returns an RGB copy of `img` with the boxes (and masks) drawn; errors name the box at fault
Image draw_boxes(const Image & img, const std::vector<DrawBox> & boxes);

}  // namespace visionllm::io
