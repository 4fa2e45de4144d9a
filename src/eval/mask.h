// COCO run-length encoded masks, with pycocotools' semantics (its maskApi): masks are column-major (Fortran
// order, as COCO stores them), counts alternate runs of 0s and 1s starting with 0s, and the compressed string
// form is COCO's 6-bit LEB128-like text. Polygons and boxes rasterise exactly as pycocotools' frPoly/frBbox.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace visionllm::eval {

struct Rle {
    int64_t h = 0, w = 0;
    std::vector<uint32_t> counts;
};

// a column-major h x w mask (nonzero = inside)
Rle rle_encode(const uint8_t * mask, int64_t h, int64_t w);
// the column-major mask (h * w bytes, 0 or 1)
std::vector<uint8_t> rle_decode(const Rle & r);
uint32_t rle_area(const Rle & r);
// [x, y, w, h] of the mask's extent (zeros for an empty mask), as pycocotools' toBbox
void rle_to_bbox(const Rle & r, double bb[4]);
Rle rle_from_bbox(const double bb[4], int64_t h, int64_t w);
// xy = x0, y0, x1, y1, ... (at least 3 points for a proper polygon)
Rle rle_from_polygon(const double * xy, int64_t n_points, int64_t h, int64_t w);
// union (or intersection) of same-size masks; different sizes give an empty 0 x 0 mask, as pycocotools
Rle rle_merge(const std::vector<const Rle *> & rles, bool intersect = false);
// COCO's compressed string and back; `what` names the input in errors
std::string rle_to_string(const Rle & r);
Rle rle_from_string(const std::string & s, int64_t h, int64_t w, const std::string & what = "RLE string");

// intersection over union of detection d with ground truth g; with `crowd`, over d's area only.
// Different mask sizes give -1, as pycocotools.
double rle_iou(const Rle & d, const Rle & g, bool crowd);
// the same for [x, y, w, h] boxes
double bbox_iou(const double d[4], const double g[4], bool crowd);

}  // namespace visionllm::eval
