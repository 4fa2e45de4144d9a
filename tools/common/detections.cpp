#include "common/detections.h"

#include <cmath>

#include "io/draw.h"
#include "io/image.h"

namespace visionllm::cli {

namespace {
double round2(double v) { return std::round(v * 100.0) / 100.0; }
}  // namespace

nlohmann::ordered_json coco_results(const std::vector<Detection> & dets, int64_t image_id, int64_t width, int64_t height) {
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    for (const Detection & d : dets) {
        nlohmann::ordered_json j = {
            {"image_id", image_id},
            {"category_id", d.label + 1},
            {"category_name", d.phrase},
            {"bbox", {round2(d.box[0]), round2(d.box[1]), round2(d.box[2] - d.box[0]), round2(d.box[3] - d.box[1])}},
            {"score", std::round(double(d.score) * 1e5) / 1e5},
        };
        if (!d.mask_rle.empty()) j["segmentation"] = {{"size", {height, width}}, {"counts", d.mask_rle}};
        out.push_back(std::move(j));
    }
    return out;
}

void print_detections(std::FILE * f, const std::vector<Detection> & dets) {
    if (dets.empty()) {
        std::fprintf(f, "no detections\n");
        return;
    }
    for (const Detection & d : dets) {
        std::fprintf(f, "  %.3f  %-20s [%.1f, %.1f, %.1f, %.1f]", d.score,
                     d.phrase.empty() ? ("#" + std::to_string(d.label + 1)).c_str() : d.phrase.c_str(), d.box[0],
                     d.box[1], d.box[2], d.box[3]);
        if (!d.mask_rle.empty()) std::fprintf(f, "  mask %lld px", (long long)d.mask_area);
        std::fprintf(f, "\n");
    }
}

void draw_detections(const std::string & image_path, const std::vector<Detection> & dets, const std::string & out_path) {
    const io::Image img = io::read_image(image_path);
    std::vector<io::DrawBox> boxes;
    for (const Detection & d : dets) {
        io::DrawBox b;
        std::copy(d.box, d.box + 4, b.box);
        char score[16];
        std::snprintf(score, sizeof score, " %.2f", d.score);
        b.caption = (d.phrase.empty() ? "#" + std::to_string(d.label + 1) : d.phrase) + score;
        b.color_index = d.label;
        b.mask_runs = d.mask_runs;
        boxes.push_back(std::move(b));
    }
    io::write_png(out_path, io::draw_boxes(img, boxes));
}

}  // namespace visionllm::cli
