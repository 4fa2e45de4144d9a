// Detection-image preprocessing against the reference pipeline (tools/golden/detect_prepost.py: mmcv's rescale rule,
// cv2 4.10 INTER_LINEAR resize, mmcv imnormalize, nested_tensor_from_tensor_list(32), pixel_values[:, 0] != 0):
// the resize byte for byte on synthetic noise of many sizes (the copy, the exact-half INTER_AREA path, up- and
// downscales, 1xN), the whole pipeline on awkward sizes (1x1 -> 800x800, 3x1000, 3999x2, 10000x10000) with
// pixel_values bit for bit, on two committed PNGs, and on ../shared/data/images (skipped when absent).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <array>
#include <cmath>
#include <cstring>

#include "common/test_util.h"
#include "decoders/gdino/preprocess.h"
#include "io/image.h"
#include "visionllm/checkpoint.h"

using namespace visionllm;
using namespace visionllm::test;
using json = nlohmann::json;

namespace {

std::string gdir() { return golden_dir("detect"); }
const json & manifest() {
    static const json j = json::parse(read_file(gdir() + "/prepost.json"));
    return j;
}
WeightMap & tensors() {
    static WeightMap w = WeightMap::open(gdir() + "/pre.safetensors");
    return w;
}

// zlib's crc32 (what the golden script records)
uint32_t crc32(const void * data, size_t n) {
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            t[i] = c;
        }
        return t;
    }();
    uint32_t c = 0xFFFFFFFFu;
    const auto * p = static_cast<const uint8_t *>(data);
    for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}
uint32_t crc_of(const io::Image & img) { return crc32(img.data.data(), img.data.size()); }
uint32_t crc_of(const at::Tensor & t) {
    const at::Tensor c = t.contiguous();
    return crc32(c.data_ptr(), size_t(c.numel()) * c.element_size());
}

// the golden's synthetic noise: ((x * 73856093) ^ (y * 19349663) ^ (c * 83492791)) >> 11 & 255 in uint32
io::Image pattern(int64_t w, int64_t h, int64_t channels) {
    io::Image img;
    img.width = w;
    img.height = h;
    img.channels = channels;
    img.data.resize(size_t(w * h * channels));
    at::parallel_for(0, h, 64, [&](int64_t y0, int64_t y1) {
        for (int64_t y = y0; y < y1; ++y) {
            uint8_t * r = img.row(y);
            const uint32_t vy = uint32_t(y) * 19349663u;
            for (int64_t x = 0; x < w; ++x) {
                const uint32_t vx = uint32_t(x) * 73856093u ^ vy;
                for (int64_t c = 0; c < channels; ++c) r[x * channels + c] = uint8_t(((vx ^ uint32_t(c) * 83492791u) >> 11) & 255);
            }
        }
    });
    return img;
}

// the checks shared by every pipeline case
void check_pipeline(const json & c, const io::Image & img) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    const gdino::DetectionImage d = gdino::preprocess_detection(img);
    ASSERT_EQ(d.width, c["width"].get<int64_t>());
    ASSERT_EQ(d.height, c["height"].get<int64_t>());
    ASSERT_EQ(d.resized_width, c["resized_width"].get<int64_t>());
    ASSERT_EQ(d.resized_height, c["resized_height"].get<int64_t>());
    const int64_t hp = c["padded_height"], wp = c["padded_width"];
    ASSERT_EQ(d.pixel_values.sizes(), (std::vector<int64_t>{1, 3, hp, wp}));
    ASSERT_EQ(d.pixel_values.scalar_type(), at::kFloat);
    ASSERT_EQ(d.pixel_mask.sizes(), (std::vector<int64_t>{1, hp, wp}));
    ASSERT_EQ(d.pixel_mask.scalar_type(), at::kBool);

    // the resized uint8 image, every byte (via its crc32 and its first and last rows)
    const io::Image resized = gdino::resize_linear(img, d.resized_width, d.resized_height);
    io::Image rgb = resized;
    if (resized.channels == 1) {  // compare as RGB, as the reference loads a gray file
        rgb.channels = 3;
        rgb.data.resize(resized.data.size() * 3);
        for (size_t i = 0; i < resized.data.size(); ++i) rgb.data[3 * i] = rgb.data[3 * i + 1] = rgb.data[3 * i + 2] = resized.data[i];
    }
    const at::Tensor rows = tensors().get(name + ".rows");
    ASSERT_EQ(rows.sizes(), (std::vector<int64_t>{2, d.resized_width, 3}));
    const auto * want_rows = rows.data_ptr<uint8_t>();
    const int64_t rl = d.resized_width * 3;
    int64_t bad = 0;
    for (int64_t i = 0; i < rl; ++i) {
        bad += rgb.row(0)[i] != want_rows[i];
        bad += rgb.row(d.resized_height - 1)[i] != want_rows[rl + i];
    }
    EXPECT_EQ(bad, 0) << "first/last resized rows differ from cv2.resize";
    EXPECT_EQ(crc_of(rgb), c["resized_crc"].get<uint32_t>()) << "resized image differs from cv2.resize";

    // pixel_values: every float bit for bit (crc32 of the float32 bytes), a sub-grid within 1e-6, the sum
    const at::Tensor pv = d.pixel_values[0];
    EXPECT_EQ(crc_of(pv), c["pixel_values_crc"].get<uint32_t>()) << "pixel_values differ from the reference";
    const at::Tensor want = tensors().get(name + ".sample");
    const int64_t off = manifest()["sample"]["offset"], step = manifest()["sample"]["step"];
    const at::Tensor got = pv.slice(1, off, hp, step).slice(2, off, wp, step);
    ASSERT_EQ(got.sizes(), want.sizes());
    EXPECT_LE((got - want).abs().max().item<float>(), 1e-6f);
    EXPECT_NEAR(pv.to(at::kDouble).sum().item<double>(), c["pixel_values_sum"].get<double>(), 1e-6 * double(pv.numel()));

    // the mask: true exactly on the resized image, padding false
    const at::Tensor m = d.pixel_mask[0];
    EXPECT_EQ(m.sum().item<int64_t>(), c["mask_count"].get<int64_t>());
    EXPECT_TRUE(m.slice(0, 0, d.resized_height).slice(1, 0, d.resized_width).all().item<bool>());
    EXPECT_EQ(pv.slice(1, d.resized_height, hp).abs().sum().item<double>(), 0.0);
    EXPECT_EQ(pv.slice(2, d.resized_width, wp).abs().sum().item<double>(), 0.0);
}

const json & pre_case(const std::string & name) {
    for (const auto & c : manifest()["pre"])
        if (c["name"] == name) return c;
    throw std::runtime_error("no golden case " + name);
}

}  // namespace

TEST(DetectPreprocess, ResizeBitExactWithCv2) {
    int checked = 0;
    for (const auto & c : manifest()["resize"]) {
        const int64_t sw = c["src"][0], sh = c["src"][1], ch = c["channels"], dw = c["dst"][0], dh = c["dst"][1];
        const io::Image src = pattern(sw, sh, ch);
        const io::Image got = gdino::resize_linear(src, dw, dh);
        ASSERT_EQ(got.width, dw);
        ASSERT_EQ(got.height, dh);
        ASSERT_EQ(got.channels, ch);
        EXPECT_EQ(crc_of(got), c["crc"].get<uint32_t>())
            << sw << "x" << sh << "x" << ch << " -> " << dw << "x" << dh << " differs from cv2.resize";
        ++checked;
    }
    EXPECT_GE(checked, 70);
}

TEST(DetectPreprocess, ResizeSpecialCases) {
    const io::Image a = pattern(9, 7, 3);
    EXPECT_EQ(gdino::resize_linear(a, 9, 7).data, a.data);  // same size: a copy
    // exact half: the 2x2 mean rounded half up (INTER_AREA's fast path)
    const io::Image h = gdino::resize_linear(pattern(8, 6, 3), 4, 3);
    const io::Image s = pattern(8, 6, 3);
    for (int64_t y = 0; y < 3; ++y)
        for (int64_t x = 0; x < 4; ++x)
            for (int64_t c = 0; c < 3; ++c) {
                const int sum = s.row(2 * y)[(2 * x) * 3 + c] + s.row(2 * y)[(2 * x + 1) * 3 + c] +
                                s.row(2 * y + 1)[(2 * x) * 3 + c] + s.row(2 * y + 1)[(2 * x + 1) * 3 + c];
                ASSERT_EQ(h.row(y)[x * 3 + c], (sum + 2) >> 2);
            }
    // a constant image stays constant at every size
    io::Image k = pattern(5, 3, 3);
    std::fill(k.data.begin(), k.data.end(), uint8_t(201));
    for (auto [w, hh] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {800, 1}, {3, 1333}, {10, 6}, {2, 1}}) {
        const io::Image r = gdino::resize_linear(k, w, hh);
        for (uint8_t v : r.data) ASSERT_EQ(v, 201) << w << "x" << hh;
    }
    // bad arguments
    EXPECT_NE(error_of([&] { gdino::resize_linear(a, 0, 5); }).find("invalid target size 0x5"), std::string::npos);
    io::Image two = pattern(4, 4, 2);
    EXPECT_NE(error_of([&] { gdino::resize_linear(two, 2, 2); }).find("2 channels"), std::string::npos);
    io::Image empty;
    EXPECT_NE(error_of([&] { gdino::resize_linear(empty, 2, 2); }).find("empty image"), std::string::npos);
}

TEST(DetectPreprocess, RescaleSizeRule) {
    using A = std::array<int64_t, 2>;
    EXPECT_EQ(gdino::rescale_size(1, 1, 1333, 800), (A{800, 800}));    // min(1333/1, 800/1)
    EXPECT_EQ(gdino::rescale_size(3, 1000, 1333, 800), (A{4, 1333}));  // int(3 * 1.333 + 0.5)
    EXPECT_EQ(gdino::rescale_size(640, 480, 1333, 800), (A{1067, 800}));
    EXPECT_EQ(gdino::rescale_size(2666, 1600, 1333, 800), (A{1333, 800}));
    EXPECT_EQ(gdino::rescale_size(1333, 800, 800, 1333), (A{1333, 800}));  // the scale tuple's order does not matter
    for (const auto & c : manifest()["pre"]) {
        const A got = gdino::rescale_size(c["width"], c["height"], 1333, 800);
        EXPECT_EQ(got, (A{c["resized_width"].get<int64_t>(), c["resized_height"].get<int64_t>()})) << c["name"];
    }
    // too elongated: mmcv's rule gives a side of 0 (cv2.resize then fails in the reference): a clear error
    const std::string e = error_of([] { gdino::rescale_size(1, 32768, 1333, 800); });
    EXPECT_NE(e.find("1x32768 image is too elongated"), std::string::npos) << e;
    EXPECT_NE(error_of([] { gdino::rescale_size(0, 5, 1333, 800); }).find("invalid image size"), std::string::npos);
    EXPECT_NE(error_of([] { gdino::rescale_size(5, 5, 0, 800); }).find("must be positive"), std::string::npos);
}

TEST(DetectPreprocess, PipelineOnAwkwardSizes) {
    int checked = 0;
    for (const auto & c : manifest()["pre"]) {
        if (c["source"] != "pattern" || c["width"].get<int64_t>() >= 10000) continue;
        check_pipeline(c, pattern(c["width"], c["height"], c["channels"]));
        ++checked;
    }
    EXPECT_GE(checked, 15);
}

TEST(DetectPreprocess, LargeImage) {
    // 10000 x 10000 (300 MB of pixels) -> 800 x 800; nothing of the input's size is allocated besides the input
    const json & c = pre_case("pattern_10000x10000");
    check_pipeline(c, pattern(10000, 10000, 3));
}

TEST(DetectPreprocess, GrayIsReplicated) {
    const io::Image g = pattern(30, 20, 1);
    io::Image rgb = pattern(30, 20, 3);
    for (size_t i = 0; i < g.data.size(); ++i) rgb.data[3 * i] = rgb.data[3 * i + 1] = rgb.data[3 * i + 2] = g.data[i];
    const auto a = gdino::preprocess_detection(g), b = gdino::preprocess_detection(rgb);
    EXPECT_TRUE(a.pixel_values.equal(b.pixel_values));
    EXPECT_TRUE(a.pixel_mask.equal(b.pixel_mask));
}

TEST(DetectPreprocess, NormalisationOfEveryValue) {
    // all 256 values in every channel, at the identity size (1333 x 800 is kept as is)
    io::Image img = pattern(1333, 800, 3);
    for (int64_t x = 0; x < 256; ++x)
        for (int64_t c = 0; c < 3; ++c) img.row(0)[x * 3 + c] = uint8_t(x);
    const auto d = gdino::preprocess_detection(img);
    const double mean[3] = {123.675f, 116.28f, 103.53f}, stdv[3] = {58.395f, 57.12f, 57.375f};
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t x = 0; x < 256; ++x) {
            const float got = d.pixel_values[0][c][0][x].item<float>();
            EXPECT_NEAR(got, (double(x) - mean[c]) / stdv[c], 1e-6) << c << " " << x;
            EXPECT_NE(got, 0.f);  // so pixel_mask is true on every real pixel
        }
    EXPECT_EQ(d.pixel_values.size(2), 800);
    EXPECT_EQ(d.pixel_values.size(3), 1344);
}

TEST(DetectPreprocess, CommittedPngFiles) {
    int checked = 0;
    for (const auto & c : manifest()["pre"]) {
        const std::string src = c["source"];
        if (src.rfind("inputs/", 0) != 0) continue;
        const io::Image img = io::read_image(gdir() + "/" + src);
        EXPECT_EQ(crc_of(img), c["input_crc"].get<uint32_t>()) << src << " decodes differently from cv2";
        check_pipeline(c, img);
        ++checked;
    }
    EXPECT_EQ(checked, 2);
}

TEST(DetectPreprocess, SharedImages) {
    const std::string shared = shared_dir();
    if (shared.empty()) GTEST_SKIP() << "../shared is absent";
    int checked = 0;
    for (const auto & c : manifest()["pre"]) {
        const std::string src = c["source"];
        if (src.rfind("images/", 0) != 0) continue;
        const io::Image img = io::read_image(shared + "/data/" + src);  // EXIF applied, as cv2's IMREAD_COLOR does
        if (crc_of(img) != c["input_crc"].get<uint32_t>()) {
            // a lossy file decoded differently by the system libjpeg: the pipeline cannot be bit-exact then
            ADD_FAILURE() << src << ": decoded pixels differ from cv2's (" << (c.value("lossy", false) ? "lossy" : "lossless")
                          << ")";
            continue;
        }
        check_pipeline(c, img);
        ++checked;
    }
    EXPECT_GE(checked, 6);
}

TEST(DetectPreprocess, BadArguments) {
    io::Image empty;
    EXPECT_NE(error_of([&] { gdino::preprocess_detection(empty); }).find("empty image"), std::string::npos);
    const io::Image img = pattern(4, 4, 3);
    gdino::DetectionImageConfig cfg;
    cfg.size_divisor = 0;
    EXPECT_NE(error_of([&] { gdino::preprocess_detection(img, cfg); }).find("size_divisor"), std::string::npos);
    cfg = {};
    cfg.std[1] = 0.f;
    EXPECT_NE(error_of([&] { gdino::preprocess_detection(img, cfg); }).find("std"), std::string::npos);
    io::Image rgba = pattern(4, 4, 4);
    EXPECT_NE(error_of([&] { gdino::preprocess_detection(rgba); }).find("4 channels"), std::string::npos);
    io::Image thin = pattern(1, 5000, 3);  // 1 x 5000 -> int(1 * 0.2666 + 0.5) = 0 wide
    EXPECT_NE(error_of([&] { gdino::preprocess_detection(thin); }).find("too elongated"), std::string::npos);
    io::Image short_data = pattern(4, 4, 3);
    short_data.data.pop_back();
    EXPECT_NE(error_of([&] { gdino::preprocess_detection(short_data); }).find("bytes"), std::string::npos);
    // size_divisor 1: no padding
    cfg = {};
    cfg.size_divisor = 1;
    const auto d = gdino::preprocess_detection(pattern(7, 5, 3), cfg);
    EXPECT_EQ(d.pixel_values.sizes(), (std::vector<int64_t>{1, 3, 800, 1120}));
    EXPECT_TRUE(d.pixel_mask.all().item<bool>());
}
