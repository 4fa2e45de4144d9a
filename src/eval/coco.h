// COCO-format datasets and result files, read as pycocotools' COCO / COCO.loadRes read them (and xtcocotools'
// for CrowdPose). Errors name the file and the entry at fault.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "eval/mask.h"

namespace visionllm::eval {

struct CocoImage {
    int64_t id = 0;
    int64_t width = 0, height = 0;
    std::string file_name;
    bool has_crowd_index = false;  // CrowdPose's per-image "crowdIndex"
    double crowd_index = 0;
};

struct CocoCategory {
    int64_t id = 0;
    std::string name;
    std::vector<std::string> keypoints;  // keypoint names (keypoint datasets)
};

// one annotation (ground truth) or one result (detection)
struct CocoAnnotation {
    int64_t id = 0, image_id = 0, category_id = 0;
    bool iscrowd = false;
    bool has_area = false;
    double area = 0;
    bool has_bbox = false;
    double bbox[4] = {0, 0, 0, 0};  // x, y, w, h
    // segmentation: polygons (each x0, y0, x1, y1, ...), or an RLE (from uncompressed counts or a compressed
    // string; rle.h/w are the RLE's own "size"), or none
    enum class Segm { None, Polygons, Rle, BoxPolygon } segm = Segm::None;  // BoxPolygon: loadRes' box outline
    std::vector<std::vector<double>> polygons;
    Rle rle;
    std::vector<double> keypoints;  // x, y, v triplets
    bool has_num_keypoints = false;
    int64_t num_keypoints = 0;
    double score = 0;  // results only
};

struct CocoDataset {
    std::string source;  // the file it came from (for errors)
    std::vector<CocoImage> images;          // in file order
    std::vector<CocoCategory> categories;   // in file order (the dataset's class order)
    std::vector<CocoAnnotation> annotations;
    std::unordered_map<int64_t, size_t> image_index, category_index;  // id -> position

    const CocoImage * find_image(int64_t id) const;
    const CocoCategory * find_category(int64_t id) const;
};

// a ground-truth file (images, categories, annotations). Duplicate image, category or annotation ids and
// malformed entries are errors naming the entry.
CocoDataset load_coco(const std::string & path);
CocoDataset coco_from_json(const nlohmann::json & j, const std::string & source);

// The annotation's mask on its image, as pycocotools' annToRLE: an RLE as given; polygons rasterised and merged
// (a first "polygon" of exactly 4 numbers makes them all [x, y, w, h] boxes, as frPyObjects; none: an empty
// mask); a result's box outline. `what` ("annotation", "result") names it in errors.
Rle annotation_rle(const CocoDataset & gt, const CocoAnnotation & a, const char * what);

// A results file: a JSON array of {image_id, category_id, score, bbox | segmentation | keypoints}, completed
// as pycocotools' loadRes does (ids 1.., area and bbox from the first result's kind, iscrowd 0). Results naming
// an image or category the ground truth does not have are errors; an empty list is allowed (no detections).
std::vector<CocoAnnotation> load_results(const CocoDataset & gt, const std::string & path);
std::vector<CocoAnnotation> results_from_json(const CocoDataset & gt, const nlohmann::json & j, const std::string & source);

}  // namespace visionllm::eval
