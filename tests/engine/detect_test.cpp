// Engine::detect end to end on the tiny random VisionLLMv2 checkpoint with Grounding DINO that make-tiny
// writes, against tools/golden/detect.py's Python reference (transformers 4.34 LLM/CLIP side, transformers
// 4.40.2 Grounding DINO with VisionLLM v2's changes, mmdet/cv2 detection preprocessing, eval_det.py's
// post-processing, pycocotools RLE) on the images of ../shared/data/images: the templated single pass, and
// generation with routing (the model answers "[DET]" and the queries are inserted in that step). Also the bad
// inputs of issue 5: no classes, more classes than max_text_len, a 1x1 and a 10000x10000 image.
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "io/image.h"
#include "visionllm/checkpoint.h"
#include "visionllm/engine.h"
#include "visionllm/error.h"
#include "visionllm/make_tiny.h"

using namespace visionllm;
using json = nlohmann::json;

namespace {

MakeTinyOptions tiny_options(const std::string & dir) {
    MakeTinyOptions o;
    o.out_dir = dir;
    o.components = {"llm", "vision", "region", "gdino"};
    o.dtype = DType::F32;  // as the golden's make-tiny --dtype f32 --seed 0
    o.seed = 0;
    o.format = "safetensors";  // same values as the golden's .bin shards; one file, patched below
    o.shards = 1;
    o.progress = false;
    return o;
}

EngineOptions f32_cpu() {
    EngineOptions eo;
    eo.device = "cpu";
    eo.dtype = "f32";
    eo.vision_dtype = "f32";
    eo.decoder_dtype = "f32";
    return eo;
}

// overwrites rows of llm.lm_head.weight (f32) inside the single safetensors file
void patch_lm_head(const std::string & dir, const json & rows) {
    const WeightMap map = WeightMap::open(dir);
    const TensorInfo & info = map.info("llm.lm_head.weight");
    const int64_t hidden = info.shape[1];
    const std::string file = map.files()[size_t(info.file)];
    FILE * f = std::fopen(file.c_str(), "r+b");
    ASSERT_NE(f, nullptr);
    // every row zero, then the golden's two
    std::vector<float> zero(size_t(hidden), 0.f);
    for (int64_t r = 0; r < info.shape[0]; ++r) {
        std::fseek(f, long(info.data_offset + uint64_t(r * hidden) * 4), SEEK_SET);
        std::fwrite(zero.data(), 4, zero.size(), f);
    }
    for (const auto & [id, values] : rows.items()) {
        const std::vector<float> v = values.get<std::vector<float>>();
        ASSERT_EQ(int64_t(v.size()), hidden);
        std::fseek(f, long(info.data_offset + uint64_t(std::stoll(id) * hidden) * 4), SEEK_SET);
        std::fwrite(v.data(), 4, v.size(), f);
    }
    std::fclose(f);
}

double mask_agreement(const Detection & d, const std::string & want_rle, int64_t want_area) {
    // equal pycocotools strings are equal masks; otherwise the ratio of the areas (pixels on the 0.5 threshold may
    // flip between implementations)
    if (d.mask_rle == want_rle) return 1.0;
    return double(std::min(d.mask_area, want_area)) / double(std::max<int64_t>(1, std::max(d.mask_area, want_area)));
}

void expect_detections(const std::vector<Detection> & got, const json & want, const std::string & what) {
    ASSERT_EQ(got.size(), want.size()) << what;
    for (size_t i = 0; i < got.size(); ++i) {
        const json & w = want[i];
        // near-equal scores may swap places between implementations: find the same (query, label)
        size_t j = i;
        for (size_t k = 0; k < got.size(); ++k)
            if (got[k].query == w["query"].get<int64_t>() && got[k].label == w["label"].get<int64_t>()) j = k;
        const Detection & d = got[j];
        SCOPED_TRACE(what + " detection " + std::to_string(i));
        EXPECT_EQ(d.query, w["query"].get<int64_t>());
        EXPECT_EQ(d.label, w["label"].get<int64_t>());
        EXPECT_LE(j > i ? j - i : i - j, 2u);
        EXPECT_NEAR(d.score, w["score"].get<double>(), 2e-4);
        for (int k = 0; k < 4; ++k) EXPECT_NEAR(d.box[k], w["box"][k].get<double>(), 0.05) << "coordinate " << k;
        if (w.contains("mask_rle")) {
            EXPECT_GE(mask_agreement(d, w["mask_rle"].get<std::string>(), w["mask_area"].get<int64_t>()), 0.99);
        }
    }
}

class DetectGolden : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        if (test::shared_dir().empty()) return;
        golden_ = new json(json::parse(test::read_file(test::golden_dir("detect_e2e") + "/expected.json")));
        dir_ = new test::TempDir("detect-golden");
        make_tiny(tiny_options(dir_->path()));
        engine_ = Engine::load(dir_->path(), f32_cpu()).release();
    }
    static void TearDownTestSuite() {
        delete engine_;
        delete dir_;
        delete golden_;
    }
    void SetUp() override {
        if (test::shared_dir().empty()) GTEST_SKIP() << "../shared is absent: the golden images live there";
    }
    static std::string image(const std::string & name) { return test::shared_dir() + "/data/images/" + name; }

    static json * golden_;
    static test::TempDir * dir_;
    static Engine * engine_;
};
json * DetectGolden::golden_ = nullptr;
test::TempDir * DetectGolden::dir_ = nullptr;
Engine * DetectGolden::engine_ = nullptr;

TEST_F(DetectGolden, TemplatedSinglePassMatchesTheReference) {
    int n = 0;
    for (const auto & [name, c] : (*golden_)["cases"].items()) {
        if (c["mode"] != "classes") continue;
        DetectRequest req;
        req.image = ImageInput::from_file(image(c["image"].get<std::string>()));
        req.classes = (*golden_)["classes"].get<std::vector<std::string>>();
        req.options.topk = (*golden_)["topk"].get<int64_t>();
        req.options.threshold = 0;
        req.options.masks = true;
        const DetectResult r = engine_->detect(req);
        EXPECT_EQ(r.prompt_tokens, int64_t(c["prompt_ids"].size())) << name;
        EXPECT_EQ(r.width, c["size"][0].get<int64_t>());
        EXPECT_EQ(r.height, c["size"][1].get<int64_t>());
        EXPECT_EQ(r.phrases, req.classes);
        EXPECT_EQ(r.text, "Yes, here are the results for cat, dog, remote control in the image.");
        // masks were computed for the best few only in the golden
        expect_detections(r.detections, c["detections"], name);
        ++n;
    }
    EXPECT_GE(n, 3);
}

TEST_F(DetectGolden, GenerationWithRoutingMatchesTheReference) {
    const json * gen = nullptr;
    for (const auto & [name, c] : (*golden_)["cases"].items())
        if (c["mode"] == "prompt") gen = &c;
    ASSERT_NE(gen, nullptr);
    test::TempDir d("detect-gen");
    make_tiny(tiny_options(d.path()));
    patch_lm_head(d.path(), (*gen)["lm_head_rows"]);
    auto engine = Engine::load(d.path(), f32_cpu());
    DetectRequest req;
    req.image = ImageInput::from_file(image((*gen)["image"].get<std::string>()));
    req.prompt = (*gen)["prompt"].get<std::string>();
    req.options.topk = (*golden_)["topk"].get<int64_t>();
    req.options.masks = true;
    req.gen.max_new_tokens = 8;
    std::string streamed;
    const DetectResult r = engine->detect(req, [&](const std::string & s) {
        streamed += s;
        return true;
    });
    EXPECT_EQ(r.prompt_tokens, int64_t((*gen)["prompt_ids"].size()));
    ASSERT_EQ(r.phrases.size(), 1u);  // one routing group: the [DET] the model generated
    expect_detections(r.detections, (*gen)["detections"], "generation");
    // chat shows the same: the route, and detections at the chat's threshold
    ChatRequest c;
    c.image = req.image;
    c.messages = {{"user", req.prompt}};
    c.gen.max_new_tokens = 8;
    c.detect = req.options;
    const ChatResult cr = engine->chat(c);
    EXPECT_EQ(cr.routes, std::vector<std::string>{"[DET]"});
    EXPECT_EQ(cr.ids, (*gen)["generated"].get<std::vector<int64_t>>());
    expect_detections(cr.detections, (*gen)["detections"], "chat");
}

// the bad inputs of the issue: clear errors or correct results, never a crash
class DetectInputs : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new test::TempDir("detect-inputs");
        MakeTinyOptions o = tiny_options(dir_->path());
        make_tiny(o);
        engine_ = Engine::load(dir_->path(), f32_cpu()).release();
    }
    static void TearDownTestSuite() {
        delete engine_;
        delete dir_;
    }
    static ImageInput pixels(int64_t w, int64_t h) {
        ImageInput i;
        i.width = w;
        i.height = h;
        i.rgb.resize(size_t(w * h * 3));
        for (size_t k = 0; k < i.rgb.size(); ++k) i.rgb[k] = uint8_t((k * 37) % 251);
        return i;
    }
    static test::TempDir * dir_;
    static Engine * engine_;
};
test::TempDir * DetectInputs::dir_ = nullptr;
Engine * DetectInputs::engine_ = nullptr;

TEST_F(DetectInputs, ErrorsNameTheProblem) {
    DetectRequest req;
    req.image = pixels(40, 30);
    EXPECT_NE(test::error_of([&] { engine_->detect(req); }).find("give classes or a prompt"), std::string::npos);
    req.classes = {"cat", ""};
    EXPECT_NE(test::error_of([&] { engine_->detect(req); }).find("class 2 is empty"), std::string::npos);
    req.classes.assign(257, "cat");
    EXPECT_NE(test::error_of([&] { engine_->detect(req); }).find("more than Grounding DINO's max_text_len of 256"),
              std::string::npos);
    req.classes = {"cat"};
    req.task = "pose";
    EXPECT_NE(test::error_of([&] { engine_->detect(req); }).find("task must be det, seg or grounding"),
              std::string::npos);
    req.task = "grounding";
    req.classes = {"a", "b"};
    EXPECT_NE(test::error_of([&] { engine_->detect(req); }).find("grounding takes one expression"), std::string::npos);
    req.task = "det";
    req.classes = {"cat"};
    req.options.threshold = 2;
    EXPECT_NE(test::error_of([&] { engine_->detect(req); }).find("threshold must be in [0, 1]"), std::string::npos);
    req.options.threshold = 0;
    req.image = ImageInput();
    EXPECT_NE(test::error_of([&] { engine_->detect(req); }).find("an image is required"), std::string::npos);
    req.image = ImageInput::from_file(dir_->file("missing.png"));
    EXPECT_NE(test::error_of([&] { engine_->detect(req); }).find("missing.png"), std::string::npos);
}

TEST_F(DetectInputs, TinyAndHugeImagesWork) {
    for (auto [w, h] : {std::pair<int64_t, int64_t>{1, 1}, {3, 1000}, {10000, 10000}}) {
        DetectRequest req;
        req.image = pixels(w, h);
        req.classes = {"cat", "dog"};
        req.options.topk = 5;
        req.options.masks = w < 10000;  // the masks' original-size resize of a 10000x10000 image is slow in Debug/ASan
        const DetectResult r = engine_->detect(req);
        ASSERT_EQ(r.detections.size(), 5u) << w << "x" << h;
        for (const Detection & d : r.detections) {
            EXPECT_TRUE(d.label == 0 || d.label == 1);
            EXPECT_GE(d.score, 0.f);
            EXPECT_LE(d.score, 1.f);
            for (float v : d.box) EXPECT_TRUE(std::isfinite(v));
            if (req.options.masks) EXPECT_FALSE(d.mask_rle.empty());
        }
        EXPECT_EQ(r.width, w);
        EXPECT_EQ(r.height, h);
    }
}

TEST_F(DetectInputs, CheckpointWithoutTheDecoderIsRefused) {
    test::TempDir d("detect-nogdino");
    MakeTinyOptions o = tiny_options(d.path());
    o.components = {"llm", "vision"};
    make_tiny(o);
    auto engine = Engine::load(d.path(), f32_cpu());
    DetectRequest req;
    req.image = pixels(8, 8);
    req.classes = {"cat"};
    EXPECT_NE(test::error_of([&] { engine->detect(req); }).find("no Grounding DINO"), std::string::npos);
}

}  // namespace
