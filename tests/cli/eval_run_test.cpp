// `visionllm-eval run`, run as a user runs it, on make-tiny's checkpoint with Grounding DINO over the 4 COCO
// images of ../shared/data/coco_keypoints: results and scores as `visionllm-eval score` gives them, resuming after
// an interruption (VISIONLLM_EVAL_STOP_AFTER, the runner's testing hook) and after a torn journal line with a
// byte-identical results file, segm RLEs, and clear errors for bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/cli_util.h"
#include "io/json_file.h"

using namespace visionllm::test;
using json = nlohmann::json;

namespace {

class CliEvalRun : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        const std::string shared = shared_dir();
        if (shared.empty() || !visionllm::io::file_exists(shared + "/data/coco_keypoints/test_coco.json")) return;
        data_ = new std::string(shared + "/data/coco_keypoints");
        dir_ = new TempDir("cli-eval-run");
        std::string out;
        ASSERT_EQ(run(vl() + " make-tiny -o " + dir_->file("m") + " --components llm,vision,region,gdino --dtype f32 --quiet",
                      &out),
                  0)
            << out;
    }
    static void TearDownTestSuite() {
        delete dir_;
        delete data_;
        dir_ = nullptr;
        data_ = nullptr;
    }
    void SetUp() override {
        if (!dir_) GTEST_SKIP() << "needs ../shared/data/coco_keypoints (absent)";
    }
    static std::string ann() { return *data_ + "/test_coco.json"; }
    static std::string ev() { return bin_path("visionllm-eval"); }
    // a run over the fixture, writing `out`, with `more` flags
    static std::string run_cmd(const std::string & out, const std::string & more = "", const std::string & annf = "") {
        return ev() + " run -m " + dir_->file("m") + " --images " + *data_ + " --ann " + (annf.empty() ? ann() : annf) +
               " -o " + out + " --device cpu --dtype f32 -t 2 " + more;
    }
    static bool exists(const std::string & p) { return visionllm::io::file_exists(p); }
    static int count_lines(const std::string & text) {
        int n = 0;
        for (char c : text) n += c == '\n';
        return n;
    }
    static TempDir * dir_;
    static std::string * data_;
};
TempDir * CliEvalRun::dir_ = nullptr;
std::string * CliEvalRun::data_ = nullptr;

// uninterrupted, interrupted after one image then resumed, and resumed from a journal with a torn last line:
// the same results file byte for byte, and the scores `visionllm-eval score` gives for it
TEST_F(CliEvalRun, ResumeGivesIdenticalResultsAndScores) {
    const std::string a = dir_->file("a.json"), b = dir_->file("b.json"), c = dir_->file("c.json");
    const json stats_a = json::parse(stdout_of(run_cmd(a, "--task det --limit 3 --json")));
    EXPECT_EQ(stats_a["iou_type"], "bbox");
    EXPECT_EQ(stats_a["images"], 3);
    ASSERT_EQ(stats_a["stats"].size(), 12u);
    EXPECT_FALSE(exists(a + ".partial.jsonl"));
    const std::string bytes_a = read_file(a);
    const json res = json::parse(bytes_a);
    ASSERT_GT(res.size(), 4u);
    // ground-truth image order, detections by descending score, dataset category ids, xywh boxes
    const std::vector<int64_t> order = {785, 40083, 196141};
    size_t at = 0;
    double last = 2;
    for (const auto & r : res) {
        while (at < order.size() && r["image_id"] != order[at]) ++at, last = 2;
        ASSERT_LT(at, order.size()) << r.dump();
        EXPECT_EQ(r["category_id"], 1);
        EXPECT_LE(r["score"].get<double>(), last);
        last = r["score"].get<double>();
        ASSERT_EQ(r["bbox"].size(), 4u);
        EXPECT_GE(r["bbox"][2].get<double>(), 0);
        EXPECT_FALSE(r.contains("segmentation"));
    }
    EXPECT_EQ(at, order.size() - 1);
    // scored as `visionllm-eval score` scores it against the first 3 images' ground truth
    json gt = visionllm::io::read_json_file(ann());
    json sub = gt;
    sub["images"].erase(sub["images"].begin() + 3, sub["images"].end());
    sub["annotations"] = json::array();
    for (const auto & g : gt["annotations"])
        if (g["image_id"] != 197388) sub["annotations"].push_back(g);
    write_file(dir_->file("gt3.json"), sub.dump());
    const json scored = json::parse(
        stdout_of(ev() + " score --ann " + dir_->file("gt3.json") + " --results " + a + " --iou-type bbox --json"));
    EXPECT_EQ(scored["stats"], stats_a["stats"]);
    EXPECT_EQ(scored["per_category"], stats_a["per_category"]);

    // stopped after one image: exit 130, the journal holds the header and that image
    const std::string stop = all_of("VISIONLLM_EVAL_STOP_AFTER=1 " + run_cmd(b, "--task det --limit 3"), 130);
    EXPECT_NE(stop.find("interrupted after 1/3 images; run the same command again to resume"), std::string::npos)
        << stop;
    EXPECT_FALSE(exists(b));
    const std::string journal = read_file(b + ".partial.jsonl");
    ASSERT_EQ(count_lines(journal), 2) << journal;
    EXPECT_EQ(json::parse(journal.substr(0, journal.find('\n')))["visionllm_eval_run"], 1);

    // the same journal with half of a second image's line after it (a kill while writing)
    const size_t second = journal.find('\n') + 1;
    write_file(c + ".partial.jsonl", journal + journal.substr(second, (journal.size() - second) / 2));

    // a journal holding every image (killed before the results file was written): finished without the model
    const std::string d = dir_->file("d.json");
    std::string full = journal.substr(0, second);
    const auto ores = nlohmann::ordered_json::parse(bytes_a);
    for (const int64_t id : order) {
        nlohmann::ordered_json line = {{"image_id", id}, {"results", nlohmann::ordered_json::array()}};
        for (const auto & r : ores)
            if (r["image_id"] == id) line["results"].push_back(r);
        full += line.dump() + "\n";
    }
    write_file(d + ".partial.jsonl", full);
    const std::string finished = all_of(run_cmd(d, "--task det --limit 3"), 0);
    EXPECT_EQ(finished.find("model: "), std::string::npos) << finished;
    EXPECT_NE(finished.find("resuming: 3 of 3 images done"), std::string::npos) << finished;
    EXPECT_EQ(read_file(d), bytes_a);

    const std::string resumed = all_of(run_cmd(b, "--task det --limit 3"), 0);
    EXPECT_NE(resumed.find("resuming: 1 of 3 images done"), std::string::npos) << resumed;
    EXPECT_NE(resumed.find("[3/3]"), std::string::npos) << resumed;  // progress: one line per image off a TTY
    EXPECT_NE(resumed.find("img/s  ETA "), std::string::npos) << resumed;
    EXPECT_EQ(resumed.find("[1/3]"), std::string::npos) << resumed;  // the finished image was not redone
    EXPECT_EQ(read_file(b), bytes_a);
    EXPECT_FALSE(exists(b + ".partial.jsonl"));

    const std::string torn = all_of(run_cmd(c, "--task det --limit 3"), 0);
    EXPECT_NE(torn.find("dropped 1 damaged line"), std::string::npos) << torn;
    EXPECT_NE(torn.find("resuming: 1 of 3 images done"), std::string::npos) << torn;
    EXPECT_EQ(read_file(c), bytes_a);
    EXPECT_FALSE(exists(c + ".partial.jsonl"));
}

// segm: masks as COCO RLEs the size of each image, scored as segm over the --limit images only
TEST_F(CliEvalRun, SegmWritesRlesAndScores) {
    const std::string out = dir_->file("segm.json");
    const json stats = json::parse(stdout_of(run_cmd(out, "--task segm --limit 2 --json")));
    EXPECT_EQ(stats["iou_type"], "segm");
    EXPECT_EQ(stats["stats"].size(), 12u);
    EXPECT_EQ(stats["images"], 2);
    const json res = json::parse(read_file(out));
    ASSERT_FALSE(res.empty());
    for (const auto & r : res) {
        ASSERT_TRUE(r["image_id"] == 785 || r["image_id"] == 40083) << r["image_id"];
        const json size = r["image_id"] == 785 ? json({425, 640}) : json({333, 500});
        EXPECT_EQ(r["segmentation"]["size"], size);
        EXPECT_TRUE(r["segmentation"]["counts"].is_string());
        EXPECT_EQ(r["bbox"].size(), 4u);
    }
}

TEST_F(CliEvalRun, BadInputIsAClearError) {
    const std::string out = dir_->file("bad.json");
    // pose: a clear error before the model is loaded (here: none at all)
    EXPECT_NE(all_of(ev() + " run -m " + dir_->file("none") + " --images " + *data_ + " --ann " + ann() +
                         " --task pose -o " + out,
                     1)
                  .find("--task pose needs the UniPose decoder, which this build does not have yet"),
              std::string::npos);
    EXPECT_NE(all_of(run_cmd(out, "--task keypoints"), 1).find("--task must be det, segm or pose, not 'keypoints'"),
              std::string::npos);
    EXPECT_NE(all_of(ev() + " run -m " + dir_->file("m") + " --images " + dir_->file("nodir") + " --ann " + ann() +
                         " --task det -o " + out,
                     1)
                  .find("nodir is not a directory"),
              std::string::npos);

    // a missing image file is named; an annotation file without categories says so
    json gt = visionllm::io::read_json_file(ann());
    gt["images"][2]["file_name"] = "nothere.jpg";
    write_file(dir_->file("missing.json"), gt.dump());
    EXPECT_NE(all_of(run_cmd(out, "--task det", dir_->file("missing.json")), 1)
                  .find("nothere.jpg: image file not found"),
              std::string::npos);
    write_file(dir_->file("nocats.json"), json({{"images", gt["images"]}, {"annotations", json::array()},
                                                {"categories", json::array()}})
                                              .dump());
    EXPECT_NE(all_of(run_cmd(out, "--task det", dir_->file("nocats.json")), 1).find("no categories"),
              std::string::npos);
    EXPECT_FALSE(exists(out + ".partial.jsonl"));

    // a journal another run left: an error that points at --fresh, which discards it
    write_file(out + ".partial.jsonl",
               R"({"visionllm_eval_run":1,"model":"/elsewhere","ann":"x.json","task":"det","dataset":"coco","limit":1})"
               "\n{\"image_id\":785,\"results\":[]}\n");
    const std::string mismatch = all_of(run_cmd(out, "--task det --limit 1"), 1);
    EXPECT_NE(mismatch.find("Pass --fresh to discard it"), std::string::npos) << mismatch;
    all_of(run_cmd(out, "--task det --limit 1 --fresh"), 0);
    EXPECT_FALSE(exists(out + ".partial.jsonl"));
    const json res = json::parse(read_file(out));
    ASSERT_FALSE(res.empty());
    for (const auto & r : res) EXPECT_EQ(r["image_id"], 785);
}

}  // namespace
