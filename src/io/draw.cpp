#include "io/draw.h"

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>

#include "visionllm/error.h"

namespace visionllm::io {

namespace {

// a fixed palette of distinguishable colours (RGB)
const uint8_t k_palette[][3] = {{230, 25, 75},  {60, 180, 75},  {255, 225, 25}, {0, 130, 200},  {245, 130, 48},
                                {145, 30, 180}, {70, 240, 240}, {240, 50, 230}, {210, 245, 60}, {250, 190, 212},
                                {0, 128, 128},  {220, 190, 255}, {170, 110, 40}, {255, 250, 200}, {128, 0, 0},
                                {170, 255, 195}, {128, 128, 0}, {255, 215, 180}, {0, 0, 128},   {128, 128, 128}};
constexpr int64_t k_colors = sizeof(k_palette) / sizeof(k_palette[0]);

}  // namespace

Image draw_boxes(const Image & img, const std::vector<DrawBox> & boxes) {
    VLLM_CHECK(!img.empty() && (img.channels == 3 || img.channels == 1) &&
                   int64_t(img.data.size()) == img.width * img.height * img.channels,
               "draw: the image is empty or malformed");
    Image out;
    out.width = img.width;
    out.height = img.height;
    out.channels = 3;
    out.data.resize(size_t(img.width * img.height * 3));
    if (img.channels == 3) {
        out.data = img.data;
    } else {
        for (size_t i = 0; i < img.data.size(); ++i) out.data[3 * i] = out.data[3 * i + 1] = out.data[3 * i + 2] = img.data[i];
    }
    cv::Mat m(int(out.height), int(out.width), CV_8UC3, out.data.data());
    const int64_t W = out.width, H = out.height;
    // masks first, so boxes and captions stay on top
    for (size_t i = 0; i < boxes.size(); ++i) {
        const DrawBox & b = boxes[i];
        if (b.mask_runs.empty()) continue;
        const uint8_t * c = k_palette[((b.color_index % k_colors) + k_colors) % k_colors];
        uint64_t total = 0;
        for (uint32_t r : b.mask_runs) total += r;
        VLLM_CHECK(total == uint64_t(W * H), "draw: box ", i + 1, ": its mask covers ", total, " pixels, not ", W * H);
        uint64_t p = 0;
        for (size_t k = 0; k < b.mask_runs.size(); ++k) {
            if (k % 2 == 1) {
                for (uint64_t j = p; j < p + b.mask_runs[k]; ++j) {  // column-major index
                    const int64_t x = int64_t(j / uint64_t(H)), y = int64_t(j % uint64_t(H));
                    uint8_t * px = out.data.data() + (y * W + x) * 3;
                    for (int ch = 0; ch < 3; ++ch) px[ch] = uint8_t((px[ch] + c[ch]) / 2);
                }
            }
            p += b.mask_runs[k];
        }
    }
    const double scale = std::clamp(double(std::max(W, H)) / 1000.0, 0.4, 1.5);
    const int thick = std::max(1, int(std::lround(2 * scale)));
    for (size_t i = 0; i < boxes.size(); ++i) {
        const DrawBox & b = boxes[i];
        for (float v : b.box) VLLM_CHECK(std::isfinite(v), "draw: box ", i + 1, " has a non-finite coordinate");
        const uint8_t * c = k_palette[((b.color_index % k_colors) + k_colors) % k_colors];
        const cv::Scalar col(c[0], c[1], c[2]);  // the buffer is RGB, so the channels go in that order
        auto clampi = [](float v, int64_t hi) { return int(std::clamp<double>(std::lround(v), -1, double(hi))); };
        const cv::Point p0(clampi(b.box[0], W), clampi(b.box[1], H)), p1(clampi(b.box[2], W), clampi(b.box[3], H));
        cv::rectangle(m, p0, p1, col, thick, cv::LINE_AA);
        if (b.caption.empty()) continue;
        int base = 0;
        const cv::Size ts = cv::getTextSize(b.caption, cv::FONT_HERSHEY_SIMPLEX, 0.5 * scale, 1, &base);
        const int ty = p0.y - ts.height - base >= 0 ? p0.y : std::min(int(H) - 1, p0.y + ts.height + base);
        const cv::Point t0(std::max(0, p0.x), std::max(0, ty - ts.height - base));
        cv::rectangle(m, t0, cv::Point(t0.x + ts.width, t0.y + ts.height + base), col, cv::FILLED);
        const bool light = c[0] * 0.299 + c[1] * 0.587 + c[2] * 0.114 > 150;
        cv::putText(m, b.caption, cv::Point(t0.x, t0.y + ts.height), cv::FONT_HERSHEY_SIMPLEX, 0.5 * scale,
                    light ? cv::Scalar(0, 0, 0) : cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
    }
    return out;
}

}  // namespace visionllm::io
