// visionllm-eval: dataset evaluators (COCO detection / instance segmentation /
// keypoints, CrowdPose). The evaluators land with the evaluation port; this
// frame fixes the command-line shape they plug into.
#include <cstdio>
#include <string>

#include "visionllm/version.h"

namespace {

struct Planned {
    const char * name;
    const char * summary;
};
const Planned k_evaluators[] = {
    {"coco", "COCO bbox / segm / keypoints mAP over a result file or a model run"},
    {"crowdpose", "CrowdPose keypoint AP (easy / medium / hard)"},
};

void usage(FILE * out) {
    std::fprintf(out, "usage: visionllm-eval <evaluator> [options]\n\nvisionllm %s evaluators:\n", VISIONLLM_VERSION);
    for (const auto & e : k_evaluators) std::fprintf(out, "  %-10s %s (not in this build yet)\n", e.name, e.summary);
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const std::string cmd = argv[1];
    if (cmd == "-h" || cmd == "--help") {
        usage(stdout);
        return 0;
    }
    if (cmd == "--version") {
        std::printf("visionllm-eval %s\n", VISIONLLM_VERSION);
        return 0;
    }
    for (const auto & e : k_evaluators) {
        if (cmd == e.name) {
            std::fprintf(stderr, "visionllm-eval: the '%s' evaluator is not in this build yet\n", e.name);
            return 1;
        }
    }
    std::fprintf(stderr, "visionllm-eval: unknown evaluator '%s'\n\n", cmd.c_str());
    usage(stderr);
    return 1;
}
