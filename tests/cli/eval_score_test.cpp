// visionllm-eval score as a user runs it: pycocotools' table, --json with the stats of the conformance fixtures,
// and errors that name the file and entry at fault.
#include <gtest/gtest.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/cli_util.h"

using namespace visionllm::test;
using nlohmann::json;

namespace {

std::string ev() { return bin_path("visionllm-eval"); }
std::string fixture(const std::string & name) { return golden_dir("eval") + "/" + name; }

std::string score_cmd(const std::string & name, const std::string & type, const std::string & dataset) {
    const std::string d = fixture(name);
    return ev() + " score --ann " + quote(d + "/gt.json") + " --results " + quote(d + "/dt.json") + " --iou-type " +
           type + " --dataset " + dataset;
}

}  // namespace

TEST(EvalScore, JsonStatsEqualTheReference) {
    const struct {
        const char *name, *type, *dataset;
    } cases[] = {{"bbox_synth_a", "bbox", "coco"},
                 {"segm_synth_a", "segm", "coco"},
                 {"kp_synth_a", "keypoints", "coco"},
                 {"crowd_synth_a", "keypoints", "crowdpose"}};
    for (const auto & c : cases) {
        SCOPED_TRACE(c.name);
        const json expected = json::parse(read_file(fixture(c.name) + "/expected.json"));
        const json j = json::parse(stdout_of(score_cmd(c.name, c.type, c.dataset) + " --json -t 2"));
        EXPECT_EQ(j["iou_type"], c.type);
        EXPECT_EQ(j["dataset"], c.dataset);
        ASSERT_EQ(j["stats"].size(), expected["stats"].size());
        ASSERT_EQ(j["stat_names"].size(), expected["stats"].size());
        for (size_t i = 0; i < j["stats"].size(); ++i)
            EXPECT_NEAR(j["stats"][i].get<double>(), expected["stats"][i].get<double>(), 1e-9) << i;
        ASSERT_EQ(j["per_category"].size(), expected["per_category"].size());
        for (size_t k = 0; k < j["per_category"].size(); ++k) {
            EXPECT_EQ(j["per_category"][k]["id"], expected["per_category"][k]["id"]);
            EXPECT_NEAR(j["per_category"][k]["ap"].get<double>(), expected["per_category"][k]["ap"].get<double>(), 1e-9);
        }
    }
}

TEST(EvalScore, PrintsTheFamiliarTable) {
    const std::string out = stdout_of(score_cmd("bbox_synth_a", "bbox", "coco"));
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 12) << out;
    EXPECT_EQ(out.rfind(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = ", 0), 0u) << out;
    const std::string kp = stdout_of(score_cmd("crowd_synth_a", "keypoints", "crowdpose"));
    EXPECT_NE(kp.find("| type=  easy | maxDets= 20 ] = "), std::string::npos) << kp;
    EXPECT_NE(kp.find("| type=  hard | maxDets= 20 ] = "), std::string::npos) << kp;
}

TEST(EvalScore, BadInputIsAClearError) {
    TempDir d("evalscore");
    const std::string gt = fixture("bbox_synth_a") + "/gt.json";
    auto err = [&](const std::string & results_text, const std::string & extra = "") {
        write_file(d.path() + "/dt.json", results_text);
        return all_of(ev() + " score --ann " + quote(gt) + " --results " + quote(d.path() + "/dt.json") + extra, 1);
    };
    std::string out = err("[{\"image_id\": 1,");
    EXPECT_NE(out.find("dt.json"), std::string::npos) << out;
    out = err(R"([{"image_id": 123456, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])");
    EXPECT_NE(out.find("results[0]: image_id 123456 is not in the ground truth"), std::string::npos) << out;
    out = err(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])", " --iou-type box");
    EXPECT_NE(out.find("'box' is not one of bbox, segm, keypoints"), std::string::npos) << out;
    out = all_of(ev() + " score --ann /nonexistent.json --results x.json", 1);
    EXPECT_NE(out.find("/nonexistent.json"), std::string::npos) << out;
    out = all_of(ev() + " score --results x.json", 1);
    EXPECT_NE(out.find("--ann"), std::string::npos) << out;
    // an empty results list scores 0 where there is ground truth, with a warning
    write_file(d.path() + "/empty.json", "[]");
    const std::string egt = fixture("bbox_empty_dets") + "/gt.json";
    out = all_of(ev() + " score --ann " + quote(egt) + " --results " + quote(d.path() + "/empty.json") + " --json", 0);
    EXPECT_NE(out.find("holds no results"), std::string::npos) << out;
    const json j = json::parse(stdout_of(ev() + " score --ann " + quote(egt) + " --results " + quote(d.path() + "/empty.json") + " --json"));
    const json expected = json::parse(read_file(fixture("bbox_empty_dets") + "/expected.json"));
    for (size_t i = 0; i < 12; ++i) EXPECT_NEAR(j["stats"][i].get<double>(), expected["stats"][i].get<double>(), 1e-12);
}
