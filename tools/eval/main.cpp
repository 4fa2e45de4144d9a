// visionllm-eval: COCO / CrowdPose evaluation. `score` scores a results file with a native COCOeval
// (pycocotools' semantics; xtcocotools' for CrowdPose); `run` runs a checkpoint over a dataset with the
// reference evaluation's prompts, resumable, then scores.
#include "common/subcommands.h"
#include "eval/commands.h"

int main(int argc, char ** argv) {
    using namespace visionllm::cli;
    return run_subcommands("visionllm-eval", "COCO and CrowdPose evaluation",
                           {
                               {"score", "score a results file: bbox / segm / keypoints AP (COCO, CrowdPose)", cmd_score},
                               {"run", "run a model over a dataset (resumable), write its results, score them", cmd_run},
                           },
                           argc, argv);
}
