// COCOeval conformance: every summary stat, the per-category AP and the accumulated arrays equal pycocotools'
// (xtcocotools' for CrowdPose) on the fixtures of tools/golden/cocoeval.py; bad input gives clear errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "eval/cocoeval.h"
#include "visionllm/error.h"

using namespace visionllm;
using nlohmann::json;

namespace {

std::string fixture(const std::string & name) { return test::golden_dir("eval") + "/" + name; }

std::vector<std::string> fixture_names() {
    const json index = json::parse(test::read_file(test::golden_dir("eval") + "/index.json"));
    std::vector<std::string> names;
    for (const auto & f : index["fixtures"]) names.push_back(f.get<std::string>());
    return names;
}

// the fixture's ground truth: its gt.json, or the ../shared annotation file it names ("" when ../shared is absent)
std::string gt_path(const std::string & name, const json & expected) {
    if (!expected.contains("gt_shared")) return fixture(name) + "/gt.json";
    const std::string shared = test::shared_dir();
    return shared.empty() ? std::string() : shared + "/" + expected["gt_shared"].get<std::string>();
}

int skipped_fixtures = 0;

void check_fixture(const std::string & name, int threads) {
    SCOPED_TRACE(name + " threads " + std::to_string(threads));
    const std::string dir = fixture(name);
    const json expected = json::parse(test::read_file(dir + "/expected.json"));
    const std::string gtp = gt_path(name, expected);
    if (gtp.empty()) {
        ++skipped_fixtures;
        return;
    }
    const eval::CocoDataset gt = eval::load_coco(gtp);
    const auto dt = eval::load_results(gt, dir + "/dt.json");
    const eval::IouType type = eval::parse_iou_type(expected["iou_type"].get<std::string>());
    const eval::Flavor flavor = eval::parse_flavor(expected["dataset"].get<std::string>());
    eval::CocoEval e(gt, dt, eval::EvalParams::defaults(type, flavor), threads);
    e.evaluate();
    e.accumulate();
    double psum = 0, rsum = 0;
    for (double v : e.precision()) psum += v;
    for (double v : e.recall()) rsum += v;
    const eval::EvalResult r = e.summarize();
    const auto & stats = expected["stats"];
    ASSERT_EQ(r.stats.size(), stats.size());
    for (size_t i = 0; i < r.stats.size(); ++i)
        EXPECT_NEAR(r.stats[i], stats[i].get<double>(), 1e-9) << "stat " << i << " (" << r.stat_names[i] << ")";
    // the per-category AP and the arrays (for CrowdPose, of the whole-set evaluation)
    const auto & per = expected["per_category"];
    ASSERT_EQ(r.per_category.size(), per.size());
    for (size_t k = 0; k < per.size(); ++k) {
        EXPECT_EQ(r.per_category[k].id, per[k]["id"].get<int64_t>());
        EXPECT_NEAR(r.per_category[k].ap, per[k]["ap"].get<double>(), 1e-9) << "category " << per[k]["id"];
    }
    EXPECT_NEAR(psum, expected["precision_sum"].get<double>(), 1e-6);
    EXPECT_NEAR(rsum, expected["recall_sum"].get<double>(), 1e-6);
}

}  // namespace

TEST(CocoEval, MatchesReferenceOnEveryFixture) {
    const auto names = fixture_names();
    ASSERT_GE(names.size(), 12u);
    for (const auto & n : names) check_fixture(n, 1);
    if (skipped_fixtures) std::printf("%d fixtures on ../shared skipped (absent)\n", skipped_fixtures);
}

TEST(CocoEval, ThreadsGiveTheSameNumbers) {
    for (const auto & n : fixture_names()) {
        const std::string dir = fixture(n);
        const json expected = json::parse(test::read_file(dir + "/expected.json"));
        const std::string gtp = gt_path(n, expected);
        if (gtp.empty()) continue;
        const eval::CocoDataset gt = eval::load_coco(gtp);
        const auto dt = eval::load_results(gt, dir + "/dt.json");
        const auto type = eval::parse_iou_type(expected["iou_type"].get<std::string>());
        const auto flavor = eval::parse_flavor(expected["dataset"].get<std::string>());
        const auto a = eval::evaluate_coco(gt, dt, type, flavor, 1);
        const auto b = eval::evaluate_coco(gt, dt, type, flavor, 3);
        EXPECT_EQ(a.stats, b.stats) << n;
        EXPECT_EQ(a.summary, b.summary) << n;
    }
}

TEST(CocoEval, EveryIouTypeHasThreeFixtures) {
    std::map<std::string, int> count;
    for (const auto & n : fixture_names()) {
        const json expected = json::parse(test::read_file(fixture(n) + "/expected.json"));
        count[expected["iou_type"].get<std::string>() + "/" + expected["dataset"].get<std::string>()]++;
    }
    EXPECT_GE(count["bbox/coco"], 3);
    EXPECT_GE(count["segm/coco"], 3);
    EXPECT_GE(count["keypoints/coco"], 3);
    EXPECT_GE(count["keypoints/crowdpose"], 3);
}

TEST(CocoEval, SummaryTableLooksLikePycocotools) {
    const std::string dir = fixture("bbox_synth_a");
    const eval::CocoDataset gt = eval::load_coco(dir + "/gt.json");
    const auto r = eval::evaluate_coco(gt, eval::load_results(gt, dir + "/dt.json"), eval::IouType::Bbox);
    EXPECT_NE(r.summary.find(" Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = "),
              std::string::npos)
        << r.summary;
    EXPECT_NE(r.summary.find(" Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = "),
              std::string::npos);
    EXPECT_EQ(std::count(r.summary.begin(), r.summary.end(), '\n'), 12);
}

// ---- bad input -------------------------------------------------------------------------------------------------

namespace {

const char * kGt = R"({"images": [{"id": 1, "width": 100, "height": 80}, {"id": 2, "width": 50, "height": 50}],
  "categories": [{"id": 1, "name": "person", "keypoints": ["a", "b"]}, {"id": 3, "name": "cat"}],
  "annotations": [
    {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 30], "area": 600, "iscrowd": 0,
     "num_keypoints": 2, "keypoints": [15, 15, 2, 20, 30, 2], "segmentation": [[10, 10, 30, 10, 30, 40, 10, 40]]},
    {"id": 2, "image_id": 2, "category_id": 3, "bbox": [0, 0, 10, 10], "area": 100, "iscrowd": 0,
     "segmentation": [[0, 0, 10, 0, 10, 10, 0, 10]]}]})";

eval::CocoDataset gt_ds() { return eval::coco_from_json(json::parse(kGt), "gt.json"); }

std::string results_error(const std::string & results) {
    const auto gt = gt_ds();
    return test::error_of([&] { eval::results_from_json(gt, json::parse(results), "dt.json"); });
}

}  // namespace

TEST(CocoEvalInput, MalformedGroundTruthIsAClearError) {
    auto err = [](const std::string & text) {
        return test::error_of([&] { eval::coco_from_json(json::parse(text), "gt.json"); });
    };
    EXPECT_NE(err("[]").find("gt.json: a COCO annotation file is a JSON object"), std::string::npos);
    EXPECT_NE(err(R"({"categories": []})").find("no \"images\""), std::string::npos);
    EXPECT_NE(err(R"({"images": [{"id": 1}, {"id": 1}], "categories": []})").find("image id 1 appears twice"),
              std::string::npos);
    EXPECT_NE(err(R"({"images": [{"id": "x"}], "categories": []})").find("images[0]: \"id\" must be an integer"),
              std::string::npos);
    EXPECT_NE(err(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                      "annotations": [{"id": 1, "image_id": 7, "category_id": 1}]})")
                  .find("annotations[0]: image_id 7 is not in \"images\""),
              std::string::npos);
    EXPECT_NE(err(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                      "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 3]}]})")
                  .find("bbox has 3 values"),
              std::string::npos);
    EXPECT_NE(err(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                      "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                       "segmentation": {"size": [2, 2], "counts": [1, 2]}}]})")
                  .find("the runs cover 3 pixels"),
              std::string::npos);
    EXPECT_NE(err(R"({"images": [{"id": 1}], "categories": [{"id": 1}],
                      "annotations": [{"id": 1, "image_id": 1, "category_id": 1,
                                       "segmentation": {"size": [2, 2], "counts": "0~"}}]})")
                  .find("segmentation"),
              std::string::npos);
    EXPECT_NE(test::error_of([] { eval::load_coco("/nonexistent/gt.json"); }).find("/nonexistent/gt.json"),
              std::string::npos);
}

TEST(CocoEvalInput, ResultsNamingUnknownIdsAreErrors) {
    EXPECT_NE(results_error(R"([{"image_id": 9, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5}])")
                  .find("dt.json: results[0]: image_id 9 is not in the ground truth (gt.json)"),
              std::string::npos);
    EXPECT_NE(results_error(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
                               {"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1], "score": 0.5}])")
                  .find("results[1]: category_id 2 is not in the ground truth"),
              std::string::npos);
    EXPECT_NE(results_error(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]}])").find("no \"score\""),
              std::string::npos);
    EXPECT_NE(results_error(R"({"image_id": 1})").find("a results file is a JSON array"), std::string::npos);
    EXPECT_NE(results_error(R"([{"image_id": 1, "category_id": 1, "score": 0.5}])").find("none of \"bbox\""),
              std::string::npos);
    EXPECT_NE(results_error(R"([{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.5},
                               {"image_id": 1, "category_id": 1, "score": 0.5, "keypoints": [1, 1, 1, 2, 2, 1]}])")
                  .find("results[1]: no \"bbox\""),
              std::string::npos);
}

TEST(CocoEvalInput, WrongKeypointLengthIsAClearError) {
    const auto gt = gt_ds();
    const auto dt = eval::results_from_json(
        gt, json::parse(R"([{"image_id": 1, "category_id": 1, "score": 0.9, "keypoints": [15, 15, 1, 20, 30, 1]},
                            {"image_id": 1, "category_id": 1, "score": 0.8, "keypoints": [15, 15, 1]}])"),
        "dt.json");
    eval::EvalParams p = eval::EvalParams::defaults(eval::IouType::Keypoints);
    p.sigmas = {0.1, 0.1};
    p.cat_ids = {1};  // the cat has no keypoints
    eval::CocoEval e(gt, dt, p, 1);
    const std::string err = test::error_of([&] { e.evaluate(); });
    EXPECT_NE(err.find("results[1] (image 1) has 3 keypoint values, expected 6"), std::string::npos) << err;
    // COCO's 17 sigmas against this 2-keypoint ground truth: the annotation is named
    eval::EvalParams p17 = eval::EvalParams::defaults(eval::IouType::Keypoints);
    p17.cat_ids = {1};
    eval::CocoEval e17(gt, dt, p17, 1);
    EXPECT_NE(test::error_of([&] { e17.evaluate(); }).find("annotation 1 has 6 keypoint values, expected 51"),
              std::string::npos);
    // keypoint values not in triplets
    EXPECT_NE(results_error(R"([{"image_id": 1, "category_id": 1, "score": 0.9, "keypoints": [1, 2]}])")
                  .find("not a multiple of 3"),
              std::string::npos);
}

TEST(CocoEvalInput, EmptyResultsScoreZeroWhereThereIsGroundTruth) {
    const auto gt = gt_ds();
    const auto dt = eval::results_from_json(gt, json::parse("[]"), "dt.json");
    EXPECT_TRUE(dt.empty());
    const auto r = eval::evaluate_coco(gt, dt, eval::IouType::Bbox);
    ASSERT_EQ(r.stats.size(), 12u);
    EXPECT_EQ(r.stats[0], 0);   // AP: ground truth exists, nothing found
    EXPECT_EQ(r.stats[3], 0);   // APs: both objects are small (areas 600, 100)
    EXPECT_EQ(r.stats[5], -1);  // APl: no large ground truth
    EXPECT_EQ(r.stats[8], 0);
}

TEST(CocoEvalInput, PerfectDetectionsScoreOne) {
    const auto gt = gt_ds();
    const auto dt = eval::results_from_json(
        gt, json::parse(R"([{"image_id": 1, "category_id": 1, "bbox": [10, 10, 20, 30], "score": 0.9},
                            {"image_id": 2, "category_id": 3, "bbox": [0, 0, 10, 10], "score": 0.8}])"),
        "dt.json");
    const auto r = eval::evaluate_coco(gt, dt, eval::IouType::Bbox);
    EXPECT_NEAR(r.stats[0], 1.0, 1e-12);
    const auto s = eval::evaluate_coco(gt, dt, eval::IouType::Segm);  // box-outline masks of the box results
    EXPECT_NEAR(s.stats[0], 1.0, 1e-12);
    ASSERT_EQ(r.per_category.size(), 2u);
    EXPECT_EQ(r.per_category[0].name, "person");
    EXPECT_NEAR(r.per_category[1].ap, 1.0, 1e-12);
}

TEST(CocoEvalInput, CrowdPoseNeedsCrowdIndex) {
    const auto gt = gt_ds();
    const auto dt = eval::results_from_json(
        gt, json::parse(R"([{"image_id": 1, "category_id": 1, "score": 0.9, "keypoints": [15, 15, 1, 20, 30, 1]}])"),
        "dt.json");
    eval::EvalParams p = eval::EvalParams::defaults(eval::IouType::Keypoints, eval::Flavor::CrowdPose);
    p.sigmas = {0.1, 0.1};
    p.cat_ids = {1};
    eval::CocoEval e(gt, dt, p, 1);
    e.evaluate();
    e.accumulate();
    EXPECT_NE(test::error_of([&] { e.summarize(); }).find("image 1 has no crowdIndex"), std::string::npos);
    EXPECT_NE(test::error_of([] { eval::parse_iou_type("box"); }).find("'box' is not one of bbox, segm, keypoints"),
              std::string::npos);
    EXPECT_NE(test::error_of([] { eval::parse_flavor("lvis"); }).find("'lvis'"), std::string::npos);
}
