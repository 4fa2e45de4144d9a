// visionllm-eval: dataset evaluators (COCO detection / instance segmentation /
// keypoints, CrowdPose). The evaluators land with the evaluation port; this
// frame fixes the command-line shape they plug into.
#include "common/subcommands.h"
#include "visionllm/error.h"

namespace {
int not_built(int, char **) { visionllm::fail("this evaluator is not in this build yet"); }
}  // namespace

int main(int argc, char ** argv) {
    return visionllm::cli::run_subcommands(
        "visionllm-eval", "dataset evaluators",
        {
            {"coco", "COCO bbox / segm / keypoints mAP (not in this build yet)", not_built},
            {"crowdpose", "CrowdPose keypoint AP, easy / medium / hard (not in this build yet)", not_built},
        },
        argc, argv);
}
