// COCO evaluation input: any text is {"gt": ground truth, "dt": results} scored as bbox, segm and keypoints, or a
// visionllm::Error. Also any text as a compressed RLE string.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "eval/cocoeval.h"
#include "visionllm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::string text(reinterpret_cast<const char *>(data), size);
    try {
        visionllm::eval::rle_from_string(text, 7, 5, "fuzz");
    } catch (const visionllm::Error &) {
    }
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("gt") || !j.contains("dt")) return 0;
    for (auto type : {visionllm::eval::IouType::Bbox, visionllm::eval::IouType::Segm, visionllm::eval::IouType::Keypoints}) {
        try {
            const auto gt = visionllm::eval::coco_from_json(j["gt"], "fuzz/gt.json");
            const auto dt = visionllm::eval::results_from_json(gt, j["dt"], "fuzz/dt.json");
            auto p = visionllm::eval::EvalParams::defaults(type);
            if (type == visionllm::eval::IouType::Keypoints) p.sigmas = {0.1, 0.2};
            visionllm::eval::CocoEval e(gt, dt, p, 1);
            e.evaluate();
            e.accumulate();
            e.summarize();
        } catch (const visionllm::Error &) {
        }
    }
    return 0;
}
