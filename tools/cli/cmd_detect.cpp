// visionllm detect: detection, instance segmentation and grounding with the Grounding DINO decoder.
// With --classes, the evaluation's templated single pass (visionllmv2.md §1.4 c); with -p, the model answers
// freely and each routing token it emits ([DET] [SEG] [GRD]) becomes one group. Results go to stdout (a table,
// or with --json one object), to -o as COCO results JSON, and to --draw as a picture.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/args.h"
#include "common/detections.h"
#include "common/llm_flags.h"
#include "io/writers.h"
#include "visionllm/engine.h"
#include "visionllm/error.h"

namespace visionllm::cli {

namespace {

// "person,dog,traffic light" -> names; empty items are errors (they would be empty classes)
std::vector<std::string> split_classes(const std::string & s) {
    std::vector<std::string> out;
    size_t b = 0;
    for (;;) {
        const size_t e = s.find(',', b);
        std::string item = s.substr(b, e == std::string::npos ? std::string::npos : e - b);
        const size_t f = item.find_first_not_of(' '), l = item.find_last_not_of(' ');
        item = f == std::string::npos ? std::string() : item.substr(f, l - f + 1);
        VLLM_CHECK(!item.empty(), "--classes: item ", out.size() + 1, " is empty (give names separated by commas)");
        out.push_back(item);
        if (e == std::string::npos) break;
        b = e + 1;
    }
    return out;
}

}  // namespace

int cmd_detect(int argc, char ** argv) {
    Args a("visionllm detect -m DIR --image IMG (--classes a,b,c | -p TEXT) [--task det|seg|grounding] [--masks] "
           "[--threshold T] [-o results.json] [--draw out.png]",
           "Finds objects with the Grounding DINO decoder of a VisionLLMv2 checkpoint. --classes runs the\n"
           "official evaluation's templated single pass (\"Can you analyze the image and identify the ...\n"
           "present?\" answered with one [DET] group per class); --task grounding takes one referring\n"
           "expression; --task seg uses the [SEG] template. -p asks in free form: the model's answer is\n"
           "generated and every routing token in it becomes a group. Boxes are in original-image pixels.");
    a.add("-m,--model", "DIR", "VisionLLMv2 checkpoint directory (with use_gdino)");
    a.add("--image", "IMG", "the image (JPEG, PNG, BMP, WebP)");
    a.add("--classes", "A,B,...", "class names in prompt order (grounding: the expression)");
    a.add("-p,--prompt", "TEXT", "a free-form request, e.g. \"Please detect the cats in this image.\"");
    a.add("--task", "T", "det, seg or grounding (with --classes)", "det");
    a.add("--threshold", "T", "keep detections scoring above T", "0.3");
    a.add("--topk", "K", "top-k over queries x classes; 0: the evaluation's (100, grounding 1)", "0");
    a.add_switch("--masks", "instance masks (COCO RLE in the JSON, drawn with --draw)");
    a.add("-o,--output", "FILE", "write the detections as COCO results JSON");
    a.add("--image-id", "N", "image_id in the COCO results", "0");
    a.add("--draw", "PNG", "write the image with boxes, labels, scores (and masks)");
    a.add("--max-tiles", "N", "anyres tiles at most for the LLM's view of the image", "4");
    a.add("--system", "TEXT", "replace the template's system sentence");
    a.add_switch("--json", "print one JSON object (answer, phrases, detections, timings)");
    add_sampling_flags(a);
    add_llm_flags(a);
    add_engine_dtype_flags(a);
    if (!a.parse(argc, argv)) return 0;

    const std::string dir = a.require("--model");
    DetectRequest req;
    req.image = ImageInput::from_file(a.require("--image"));
    VLLM_CHECK(a.has("--classes") != a.has("--prompt"), "give exactly one of --classes, -p/--prompt");
    req.task = a.get("--task");
    if (a.has("--classes")) {
        req.classes = req.task == "grounding" ? std::vector<std::string>{a.get("--classes")} : split_classes(a.get("--classes"));
    } else {
        req.prompt = a.get("--prompt");
    }
    req.options.threshold = float(a.get_float("--threshold"));
    req.options.topk = a.get_int("--topk");
    req.options.masks = a.on("--masks");
    req.max_tiles = a.get_int("--max-tiles");
    req.system = a.get("--system");
    req.gen = generation_params(a);
    const int64_t image_id = a.get_int("--image-id");
    const bool json = a.on("--json");

    auto engine = Engine::load(dir, engine_options(a));
    std::fprintf(stderr, "%s\n", engine->describe().c_str());

    auto stream = [&](const std::string & piece) {
        if (!json) {
            std::fputs(piece.c_str(), stderr);
            std::fflush(stderr);
        }
        return true;
    };
    const DetectResult r = engine->detect(req, stream);
    if (!req.prompt.empty() && !json) std::fprintf(stderr, "\n");
    const nlohmann::ordered_json coco = coco_results(r.detections, image_id, r.width, r.height);
    if (json) {
        nlohmann::ordered_json j = {{"answer", r.text},
                                    {"phrases", r.phrases},
                                    {"width", r.width},
                                    {"height", r.height},
                                    {"detections", coco},
                                    {"prompt_tokens", r.prompt_tokens},
                                    {"seconds", {{"image", r.image_seconds}, {"llm", r.llm_seconds},
                                                 {"decoder", r.decoder_seconds}}}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%s\n", r.text.c_str());
        print_detections(stdout, r.detections);
    }
    std::fflush(stdout);
    if (a.has("--output")) io::write_text_file(a.get("--output"), coco.dump(1) + "\n");
    if (a.has("--draw")) draw_detections(req.image.path, r.detections, a.get("--draw"));
    std::fprintf(stderr, "image %.2f s | llm %.2f s (%lld prompt tokens) | decoder %.2f s | %zu detections\n",
                 r.image_seconds, r.llm_seconds, (long long)r.prompt_tokens, r.decoder_seconds, r.detections.size());
    return 0;
}

}  // namespace visionllm::cli
