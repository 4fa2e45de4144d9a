// `visionllm detect`, run as a user runs it, on make-tiny's checkpoint with Grounding DINO: the table, --json,
// COCO results JSON (-o) with RLE masks, --draw, and clear errors for bad flags.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/cli_util.h"
#include "io/image.h"

using namespace visionllm::test;
using json = nlohmann::json;

namespace {

class CliDetect : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new TempDir("cli-detect");
        std::string out;
        ASSERT_EQ(run(vl() + " make-tiny -o " + dir_->file("m") + " --components llm,vision,region,gdino --dtype f32 --quiet",
                      &out),
                  0)
            << out;
        // a small test picture
        visionllm::io::Image img;
        img.width = 96;
        img.height = 64;
        img.channels = 3;
        img.data.resize(size_t(96 * 64 * 3));
        for (size_t k = 0; k < img.data.size(); ++k) img.data[k] = uint8_t((k * 13) % 241);
        visionllm::io::write_png(dir_->file("pic.png"), img);
    }
    static void TearDownTestSuite() { delete dir_; }
    static std::string detect() {
        return vl() + " detect -m " + dir_->file("m") + " --device cpu --dtype f32 --image " + dir_->file("pic.png");
    }
    static TempDir * dir_;
};
TempDir * CliDetect::dir_ = nullptr;

TEST_F(CliDetect, JsonResultsAndDrawing) {
    const std::string out = stdout_of(detect() + " --classes 'cat, dog' --threshold 0 --topk 7 --masks --json -o " +
                                      dir_->file("res.json") + " --image-id 42 --draw " + dir_->file("drawn.png"));
    const json j = json::parse(out);
    EXPECT_EQ(j["phrases"], json({"cat", "dog"}));
    EXPECT_EQ(j["width"], 96);
    EXPECT_EQ(j["height"], 64);
    EXPECT_EQ(j["answer"], "Yes, here are the results for cat, dog in the image.");
    ASSERT_EQ(j["detections"].size(), 7u);
    const json coco = json::parse(read_file(dir_->file("res.json")));
    EXPECT_EQ(coco, j["detections"]);
    double last = 2;
    for (const auto & d : coco) {
        EXPECT_EQ(d["image_id"], 42);
        EXPECT_TRUE(d["category_id"] == 1 || d["category_id"] == 2);
        EXPECT_EQ(d["category_name"], d["category_id"] == 1 ? "cat" : "dog");
        ASSERT_EQ(d["bbox"].size(), 4u);
        EXPECT_GE(d["bbox"][2].get<double>(), 0);
        EXPECT_LE(d["score"].get<double>(), last);
        last = d["score"].get<double>();
        EXPECT_EQ(d["segmentation"]["size"], json({64, 96}));
        EXPECT_TRUE(d["segmentation"]["counts"].is_string());
    }
    const visionllm::io::Image drawn = visionllm::io::read_image(dir_->file("drawn.png"));
    EXPECT_EQ(drawn.width, 96);
    EXPECT_EQ(drawn.height, 64);
}

TEST_F(CliDetect, TableAndThreshold) {
    const std::string out = stdout_of(detect() + " --classes person --threshold 1");
    EXPECT_NE(out.find("Yes, here are the results for person in the image."), std::string::npos) << out;
    EXPECT_NE(out.find("no detections"), std::string::npos) << out;
    const std::string g = stdout_of(detect() + " --task grounding --classes 'the man on the left' --threshold 0");
    EXPECT_NE(g.find("Yes, it is ."), std::string::npos) << g;
    EXPECT_NE(g.find("the man on the left"), std::string::npos) << g;  // one detection (top-1), named
}

TEST_F(CliDetect, BadFlagsAreClearErrors) {
    EXPECT_NE(all_of(detect() + " --classes 'cat,,dog'", 1).find("--classes: item 2 is empty"), std::string::npos);
    EXPECT_NE(all_of(detect(), 1).find("give exactly one of --classes, -p/--prompt"), std::string::npos);
    EXPECT_NE(all_of(detect() + " --classes cat --task pose", 1).find("task must be det, seg or grounding"),
              std::string::npos);
    EXPECT_NE(all_of(detect() + " --classes cat --threshold 1.5", 1).find("threshold must be in [0, 1]"),
              std::string::npos);
    EXPECT_NE(all_of(vl() + " detect -m " + dir_->file("m") + " --classes cat --image " + dir_->file("none.png"), 1)
                  .find("none.png"),
              std::string::npos);
}

}  // namespace
