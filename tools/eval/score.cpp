// visionllm-eval score: scores a COCO results file against a ground-truth file with the native COCOeval
// (pycocotools' numbers; xtcocotools' for --dataset crowdpose).
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/args.h"
#include "eval/commands.h"
#include "visionllm/error.h"

namespace visionllm::cli {

eval::EvalResult score_and_print(const eval::CocoDataset & gt, const std::vector<eval::CocoAnnotation> & dt,
                                 eval::IouType type, eval::Flavor flavor, bool json, int threads) {
    const auto t0 = std::chrono::steady_clock::now();
    const eval::EvalResult r = eval::evaluate_coco(gt, dt, type, flavor, threads);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (json) {
        nlohmann::ordered_json per = nlohmann::ordered_json::array();
        for (const auto & c : r.per_category) per.push_back({{"id", c.id}, {"name", c.name}, {"ap", c.ap}});
        const nlohmann::ordered_json j = {{"iou_type", eval::to_string(type)},
                                          {"dataset", flavor == eval::Flavor::CrowdPose ? "crowdpose" : "coco"},
                                          {"stats", r.stats},
                                          {"stat_names", r.stat_names},
                                          {"per_category", per},
                                          {"images", r.images},
                                          {"ground_truth", r.ground_truth},
                                          {"detections", r.detections},
                                          {"seconds", seconds}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%s", r.summary.c_str());
    }
    std::fflush(stdout);
    std::fprintf(stderr, "%s: %lld images, %lld ground truth, %lld detections scored in %.2f s\n",
                 eval::to_string(type), (long long)r.images, (long long)r.ground_truth, (long long)r.detections,
                 seconds);
    return r;
}

int cmd_score(int argc, char ** argv) {
    Args a("visionllm-eval score --ann GT.json --results DT.json --iou-type bbox|segm|keypoints "
           "[--dataset coco|crowdpose] [--json]",
           "Scores detections in the COCO results format (a JSON array of {image_id, category_id, score,\n"
           "bbox | segmentation | keypoints}) against COCO-format ground truth. The numbers are pycocotools'\n"
           "COCOeval's: 12 stats for bbox and segm, 10 for keypoints; --dataset crowdpose scores keypoints as\n"
           "xtcocotools' CrowdPose evaluation (14 keypoints, AP easy / medium / hard by crowdIndex).");
    a.add("--ann", "FILE", "ground truth (COCO annotation JSON)");
    a.add("--results", "FILE", "detections (COCO results JSON)");
    a.add("--iou-type", "T", "bbox, segm or keypoints", "bbox");
    a.add("--dataset", "D", "coco or crowdpose (keypoint sigmas and CrowdPose's stats)", "coco");
    a.add("-t,--threads", "N", "threads; 0: all cores", "0");
    a.add_switch("--json", "print one JSON object: stats (in the table's order), stat_names, per_category AP");
    if (!a.parse(argc, argv)) return 0;
    const eval::IouType type = eval::parse_iou_type(a.get("--iou-type"));
    const eval::Flavor flavor = eval::parse_flavor(a.get("--dataset"));
    const long long threads = a.get_int("--threads");
    VLLM_CHECK(threads >= 0 && threads <= 1024, "--threads ", threads, " is out of range");
    const auto t0 = std::chrono::steady_clock::now();
    const eval::CocoDataset gt = eval::load_coco(a.require("--ann"));
    const std::vector<eval::CocoAnnotation> dt = eval::load_results(gt, a.require("--results"));
    std::fprintf(stderr, "loaded %zu images, %zu annotations, %zu results in %.2f s\n", gt.images.size(),
                 gt.annotations.size(), dt.size(),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    if (dt.empty()) std::fprintf(stderr, "warning: %s holds no results: every AP is 0\n", a.get("--results").c_str());
    score_and_print(gt, dt, type, flavor, a.on("--json"), int(threads));
    return 0;
}

}  // namespace visionllm::cli
