// visionllm chat: ask about an image, optionally pointing at regions of it
// (boxes, points, scribbles, masks), in one shot or as an interactive
// multi-turn session. The answer streams to stdout; load and speed lines go
// to stderr, so stdout can be piped. --json prints one machine-readable object.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/args.h"
#include "common/detections.h"
#include "common/llm_flags.h"
#include "io/json_file.h"
#include "vision/visual_prompt.h"
#include "visionllm/engine.h"
#include "visionllm/error.h"

namespace visionllm::cli {

namespace {

Region to_region(const vision::VisualPrompt & p) {
    Region r;
    r.coords = p.coords;
    switch (p.kind) {
        case vision::VisualPrompt::Kind::Box: r.kind = Region::Kind::Box; break;
        case vision::VisualPrompt::Kind::Point: r.kind = Region::Kind::Point; break;
        case vision::VisualPrompt::Kind::Scribble: r.kind = Region::Kind::Scribble; break;
        case vision::VisualPrompt::Kind::Mask: r.kind = Region::Kind::Mask; break;
    }
    return r;
}

// the visual prompts in command-line order: region k is the k-th --box/--point/--scribble/--mask
std::vector<Region> regions_of(const Args & a) {
    std::vector<Region> out;
    for (const auto & [flag, value] : a.sequence()) {
        if (flag == "--box") out.push_back(to_region(vision::parse_box(value)));
        else if (flag == "--point") out.push_back(to_region(vision::parse_point(value)));
        else if (flag == "--scribble") out.push_back(to_region(vision::parse_scribble(value)));
        else if (flag == "--mask") {
            Region r;
            r.kind = Region::Kind::Mask;
            r.mask_path = value;
            out.push_back(r);
        }
    }
    return out;
}

void print_timings(const ChatResult & r) {
    std::fprintf(stderr,
                 "image: %lld tile%s (%lldx%lld grid%s) in %.2f s | prompt: %lld tokens (%lld run) in %.2f s | "
                 "generation: %zu tokens in %.2f s\n",
                 (long long)r.tiles, r.tiles == 1 ? "" : "s", (long long)r.grid_cols, (long long)r.grid_rows,
                 r.tiles > 1 ? " + thumbnail" : "", r.image_seconds, (long long)r.prompt_tokens,
                 (long long)r.prompt_tokens_run, r.prompt_seconds, r.ids.size(), r.generate_seconds);
}

nlohmann::ordered_json to_json(const ChatResult & r, const std::string & question) {
    nlohmann::ordered_json j = {{"question", question},
            {"answer", r.text},
            {"ids", r.ids},
            {"stopped_on_eos", r.stopped},
            {"tiles", r.tiles},
            {"grid", {r.grid_cols, r.grid_rows}},
            {"prompt_tokens", r.prompt_tokens},
            {"prompt_tokens_run", r.prompt_tokens_run},
            {"seconds", {{"image", r.image_seconds}, {"prompt", r.prompt_seconds}, {"generation", r.generate_seconds},
                         {"decoder", r.decoder_seconds}}}};
    if (!r.routes.empty()) {
        j["routes"] = r.routes;
        j["phrases"] = r.phrases;
        j["detections"] = coco_results(r.detections, 0, r.width, r.height);
    }
    return j;
}

}  // namespace

int cmd_chat(int argc, char ** argv) {
    Args a("visionllm chat -m DIR --image IMG -p TEXT [--box x1,y1,x2,y2]... [--point x,y]... [--mask PNG]... [-i]",
           "Answers questions about an image with a VisionLLMv2 checkpoint: anyres tiles through the CLIP\n"
           "tower and the bridge, the vicuna_v1 template, greedy decoding (as the reference evaluates) unless\n"
           "--temp > 0. Visual prompts, in original-image pixels, become regions 1, 2, ... in command-line\n"
           "order; refer to them in the question as <reg>region1<region></reg>. With -i, further questions are\n"
           "read from stdin: /reset forgets the conversation, /image PATH switches image (and drops the\n"
           "regions), /quit or end of input ends. The answer streams to stdout; timings go to stderr.");
    a.add("-m,--model", "DIR", "VisionLLMv2 checkpoint directory");
    a.add("--image", "IMG", "the image (JPEG, PNG, BMP, WebP); without it the chat is text-only");
    a.add("-p,--prompt", "TEXT", "the question");
    a.add("-f,--file", "FILE", "read the question from FILE");
    a.add("--box", "X1,Y1,X2,Y2", "a box region (repeatable)");
    a.add("--point", "X,Y", "a point region (repeatable)");
    a.add("--scribble", "X1,Y1,X2,Y2,...", "a polyline region (repeatable)");
    a.add("--mask", "PNG", "a binary mask region the size of the image, nonzero inside (repeatable)");
    a.add("--max-tiles", "N", "anyres tiles at most (a thumbnail is added when there are several)", "4");
    a.add("--system", "TEXT", "replace the template's system sentence");
    a.add("--threshold", "T", "when the answer routes to the detector: keep detections scoring above T", "0.3");
    a.add_switch("--masks", "when the answer routes to the detector: instance masks too");
    a.add("--draw", "PNG", "when the answer routes to the detector: write the image with the detections");
    a.add_switch("-i,--interactive", "after the answer, read further questions from stdin (multi-turn)");
    a.add_switch("--json", "print one JSON object per answer (answer, ids, tiles, timings) instead of streaming");
    add_sampling_flags(a);
    add_llm_flags(a);
    add_engine_dtype_flags(a);
    if (!a.parse(argc, argv)) return 0;

    const std::string dir = a.require("--model");
    VLLM_CHECK(int(a.has("--prompt")) + int(a.has("--file")) == 1, "give exactly one of -p/--prompt, -f/--file");
    const bool json = a.on("--json");

    ChatRequest req;
    if (a.has("--image")) req.image = ImageInput::from_file(a.get("--image"));
    req.regions = regions_of(a);
    VLLM_CHECK(req.regions.empty() || !req.image.empty(), "--box/--point/--scribble/--mask need --image");
    req.max_tiles = a.get_int("--max-tiles");
    req.system = a.get("--system");
    req.gen = generation_params(a);
    req.detect.threshold = float(a.get_float("--threshold"));
    req.detect.masks = a.on("--masks");

    auto engine = Engine::load(dir, engine_options(a));
    std::fprintf(stderr, "%s | seed %llu\n", engine->describe().c_str(), (unsigned long long)req.gen.seed);

    std::string question = a.has("--prompt") ? a.get("--prompt") : io::read_text_file(a.get("--file"));
    std::vector<Message> history;
    for (;;) {
        req.messages = history;
        req.messages.push_back({"user", question});
        ChatResult r;
        bool answered = true;
        auto stream = [&](const std::string & piece) {
            if (!json) {
                std::fputs(piece.c_str(), stdout);
                std::fflush(stdout);
            }
            return true;
        };
        if (!a.on("--interactive")) {
            r = engine->chat(req, stream);
        } else {
            try {  // in a session a bad turn (an unreadable /image, a full context) is reported, not fatal
                r = engine->chat(req, stream);
            } catch (const Error & e) {
                std::fprintf(stderr, "error: %s\n", e.what());
                answered = false;
            }
        }
        if (answered) {
            if (json) std::printf("%s\n", to_json(r, question).dump().c_str());
            else std::printf("\n");
            if (!json && !r.routes.empty()) {
                for (size_t k = 0; k < r.routes.size(); ++k)
                    std::printf("%s %s\n", r.routes[k].c_str(), r.phrases[k].empty() ? "(no phrase)" : r.phrases[k].c_str());
                print_detections(stdout, r.detections);
            }
            if (a.has("--draw") && !r.routes.empty() && !req.image.empty())
                draw_detections(req.image.path, r.detections, a.get("--draw"));
            std::fflush(stdout);
            print_timings(r);
            if (!a.on("--interactive")) break;
            history.push_back({"user", question});
            history.push_back({"assistant", r.text});
        }
        for (;;) {
            std::fprintf(stderr, "> ");
            if (!std::getline(std::cin, question) || question == "/quit" || question == "/exit") return 0;
            if (question == "/reset") {
                history.clear();
                std::fprintf(stderr, "(conversation cleared)\n");
                continue;
            }
            if (question.rfind("/image ", 0) == 0) {
                req.image = ImageInput::from_file(question.substr(7));
                req.regions.clear();
                history.clear();
                std::fprintf(stderr, "(new image %s; conversation and regions cleared)\n", req.image.path.c_str());
                continue;
            }
            if (question.empty()) continue;
            break;
        }
    }
    return 0;
}

}  // namespace visionllm::cli
