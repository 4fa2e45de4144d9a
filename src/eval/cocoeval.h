// COCOeval: pycocotools' evaluate / accumulate / summarize for bbox, segm and keypoints, and xtcocotools'
// CrowdPose variant ("keypoints_crowd", use_area=False: AP easy / medium / hard by crowd index). Same
// thresholds, matching, crowd and ignore handling, accumulation and summary statistics (-1 where undefined).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "eval/coco.h"

namespace visionllm::eval {

enum class IouType { Bbox, Segm, Keypoints };
enum class Flavor {
    Coco,       // pycocotools
    CrowdPose,  // xtcocotools keypoints_crowd with use_area=False and the 14 CrowdPose sigmas
};

IouType parse_iou_type(const std::string & s);  // "bbox" | "segm" | "keypoints"
Flavor parse_flavor(const std::string & s);     // "coco" | "crowdpose"
const char * to_string(IouType t);

// OKS sigmas: COCO's 17 and CrowdPose's 14
const std::vector<double> & coco_keypoint_sigmas();
const std::vector<double> & crowdpose_keypoint_sigmas();

struct EvalParams {
    IouType iou_type = IouType::Bbox;
    Flavor flavor = Flavor::Coco;
    std::vector<int64_t> img_ids, cat_ids;  // empty: all of the ground truth's (sorted)
    std::vector<double> iou_thrs, rec_thrs;
    std::vector<int64_t> max_dets;
    std::vector<std::array<double, 2>> area_rng;
    std::vector<std::string> area_lbl;
    std::vector<double> sigmas;  // keypoints
    bool use_area = true;        // false: OKS scale and area ranges from bbox w * h * 0.53 (xtcocotools)
    bool use_cats = true;

    // pycocotools' Params(iouType) (and xtcocotools' for CrowdPose)
    static EvalParams defaults(IouType t, Flavor f = Flavor::Coco);
};

struct CategoryAp {
    int64_t id = 0;
    std::string name;
    double ap = -1;  // AP@[.5:.95], all areas, the largest maxDets; -1 without ground truth
};

struct EvalResult {
    std::vector<double> stats;             // 12 (bbox, segm), 10 (keypoints) or 9 (CrowdPose)
    std::vector<std::string> stat_names;   // "AP", "AP50", ... in the same order
    std::vector<CategoryAp> per_category;  // in the ground truth's category order
    std::string summary;                   // pycocotools' printed table
    int64_t images = 0, ground_truth = 0, detections = 0;
};

class CocoEval {
public:
    CocoEval(const CocoDataset & gt, const std::vector<CocoAnnotation> & dt, EvalParams params, int threads = 0);
    ~CocoEval();
    void evaluate();
    void accumulate();
    EvalResult summarize();

    // accumulate()'s arrays, pycocotools' layout: precision [T][R][K][A][M], recall [T][K][A][M]
    const std::vector<double> & precision() const;
    const std::vector<double> & recall() const;
    const EvalParams & params() const;

    struct Impl;

private:
    Impl * impl_;
};

// load, evaluate, accumulate, summarize
EvalResult evaluate_coco(const CocoDataset & gt, const std::vector<CocoAnnotation> & dt, IouType t,
                         Flavor f = Flavor::Coco, int threads = 0);

}  // namespace visionllm::eval
