// Showing detections: a text table, COCO-results JSON and a drawing (visionllm detect / chat).
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "visionllm/engine.h"

namespace visionllm::cli {

// COCO results format, one object per detection: image_id, category_id (label + 1), bbox [x, y, w, h],
// score, and segmentation {size [h, w], counts} when the detection has a mask; plus category_name
nlohmann::ordered_json coco_results(const std::vector<Detection> & dets, int64_t image_id, int64_t width, int64_t height);

// one line per detection: "  0.873  cat            [x0, y0, x1, y1]"
void print_detections(std::FILE * f, const std::vector<Detection> & dets);

// reads `image_path`, draws the boxes (and masks), writes a PNG to `out_path`
void draw_detections(const std::string & image_path, const std::vector<Detection> & dets, const std::string & out_path);

}  // namespace visionllm::cli
