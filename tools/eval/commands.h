// visionllm-eval subcommands.
#pragma once

#include <vector>

#include "eval/cocoeval.h"

namespace visionllm::cli {

// visionllm-eval score: pycocotools-style scoring of a results file
int cmd_score(int argc, char ** argv);
// visionllm-eval run: runs a checkpoint over a dataset (resumable), then scores
int cmd_run(int argc, char ** argv);

// evaluates and prints: pycocotools' table on stdout, or with `json` one object
// {"iou_type", "dataset", "stats", "stat_names", "per_category", "images", "ground_truth", "detections", "seconds"}
eval::EvalResult score_and_print(const eval::CocoDataset & gt, const std::vector<eval::CocoAnnotation> & dt,
                                 eval::IouType type, eval::Flavor flavor, bool json, int threads = 0);

}  // namespace visionllm::cli
