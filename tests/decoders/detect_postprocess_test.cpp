// Grounding DINO post-processing against eval_det.py's post_process_det_gdino / post_process_instseg_gdino and
// pycocotools 2.0.8 (tools/golden/detect_prepost.py): detections equal in order, score, label, query and box (bit
// for bit, ties included), masks through their COCO RLE strings and areas, the RLE encoder on hand-made masks, and
// the argument checks.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "common/test_util.h"
#include "decoders/gdino/postprocess.h"
#include "visionllm/checkpoint.h"
#include "visionllm/device.h"

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
    static WeightMap w = WeightMap::open(gdir() + "/post.safetensors");
    return w;
}
at::Tensor get(const std::string & key) { return tensors().get(key).clone(); }

void expect_detections(const std::vector<gdino::Detection> & got, const std::string & name) {
    const at::Tensor s = get(name + ".scores"), l = get(name + ".labels"), q = get(name + ".queries"),
                     b = get(name + ".xyxy");
    ASSERT_EQ(int64_t(got.size()), s.numel()) << name;
    for (size_t i = 0; i < got.size(); ++i) {
        SCOPED_TRACE(name + " #" + std::to_string(i));
        EXPECT_EQ(got[i].score, s[int64_t(i)].item<float>());
        EXPECT_EQ(got[i].label, l[int64_t(i)].item<int64_t>());
        EXPECT_EQ(got[i].query, q[int64_t(i)].item<int64_t>());
        for (int j = 0; j < 4; ++j) EXPECT_EQ(got[i].box[j], b[int64_t(i)][j].item<float>()) << "box coordinate " << j;
    }
}

std::vector<const json *> cases(const std::string & kind) {
    std::vector<const json *> out;
    for (const auto & c : manifest()["post"])
        if (c["kind"] == kind) out.push_back(&c);
    return out;
}

}  // namespace

TEST(DetectPostprocess, DetectionsMatchReference) {
    int checked = 0;
    for (const json * cp : cases("det")) {
        const json & c = *cp;
        const std::string name = c["name"];
        const auto got = gdino::post_process_detections(get(name + ".logits"), get(name + ".boxes"), c["num_classes"],
                                                        c["topk"], c["width"], c["height"], c["threshold"].get<float>());
        expect_detections(got, name);
        ++checked;
    }
    EXPECT_EQ(checked, 4);
    // the reference drops scores of exactly 0 (s > 0): "det" has 30 of its 40 queries at logit -200
    const auto & d = manifest()["post"][0];
    ASSERT_EQ(d["name"], "det");
    EXPECT_LT(d["count"].get<int64_t>(), 100);
    // the top-k is clamped to Q * num_classes
    EXPECT_EQ(manifest()["post"][1]["count"].get<int64_t>(), 18);
    // score > 0.95 keeps fewer than the top 100
    EXPECT_LT(manifest()["post"][2]["count"].get<int64_t>(), 100);
}

TEST(DetectPostprocess, BatchOfOneAndOtherDtypes) {
    const std::string name = "det_threshold";
    const json & c = *cases("det")[2];
    ASSERT_EQ(c["name"], name);
    const at::Tensor logits = get(name + ".logits"), boxes = get(name + ".boxes");
    const auto got = gdino::post_process_detections(logits.unsqueeze(0), boxes.unsqueeze(0), c["num_classes"], c["topk"],
                                                    c["width"], c["height"], c["threshold"].get<float>());
    expect_detections(got, name);
    // double inputs are computed in float32 as well
    const auto dbl = gdino::post_process_detections(logits.to(at::kDouble), boxes.to(at::kDouble), c["num_classes"],
                                                    c["topk"], c["width"], c["height"], c["threshold"].get<float>());
    expect_detections(dbl, name);
}

TEST(DetectPostprocess, InstanceMasksMatchPycocotools) {
    int checked = 0;
    for (const json * cp : cases("instseg")) {
        const json & c = *cp;
        const std::string name = c["name"];
        SCOPED_TRACE(name);
        // post_process_instseg_gdino: the same top-k with no threshold
        const auto dets = gdino::post_process_detections(get(name + ".logits"), get(name + ".boxes"), c["num_classes"],
                                                         c["topk"], c["width"], c["height"], gdino::kKeepAll);
        expect_detections(dets, name);
        const at::Tensor all = get(name + ".mask_logits").to(at::kFloat);  // [Q, h, w] (stored as fp16)
        const at::Tensor chosen = all.index_select(0, gdino::detection_queries(dets));
        const int64_t W = c["width"], H = c["height"], rw = c["resized_width"], rh = c["resized_height"];
        const at::Tensor masks = gdino::post_process_masks(chosen, rw, rh, W, H);
        ASSERT_EQ(masks.sizes(), (std::vector<int64_t>{int64_t(dets.size()), H, W}));
        ASSERT_EQ(masks.scalar_type(), at::kBool);
        const auto rles = gdino::post_process_masks_rle(chosen.unsqueeze(0), rw, rh, W, H);
        ASSERT_EQ(rles.size(), dets.size());
        for (size_t i = 0; i < dets.size(); ++i) {
            const gdino::Rle r = gdino::encode_rle(masks[int64_t(i)]);
            EXPECT_EQ(eval::rle_to_string(r), c["rle"][i].get<std::string>()) << "mask " << i;
            EXPECT_EQ(int64_t(eval::rle_area(r)), c["area"][i].get<int64_t>()) << "mask " << i;
            EXPECT_EQ(eval::rle_to_string(rles[i]), eval::rle_to_string(r)) << "mask " << i;
            EXPECT_EQ(rles[i].h, H);
            EXPECT_EQ(rles[i].w, W);
        }
        ++checked;
    }
    EXPECT_EQ(checked, 3);
}

TEST(DetectPostprocess, RleMatchesPycocotools) {
    int checked = 0;
    for (const auto & c : manifest()["rle"]) {
        const std::string name = c["name"];
        const at::Tensor m = get("rle." + name + ".mask");
        const gdino::Rle r = gdino::encode_rle(m);
        EXPECT_EQ(r.h, c["height"].get<int64_t>()) << name;
        EXPECT_EQ(r.w, c["width"].get<int64_t>()) << name;
        EXPECT_EQ(eval::rle_to_string(r), c["rle"].get<std::string>()) << name;
        EXPECT_EQ(int64_t(eval::rle_area(r)), c["area"].get<int64_t>()) << name;
        EXPECT_EQ(gdino::encode_rle(m.to(at::kBool)).counts, r.counts) << name;  // bool and uint8 alike
        ++checked;
    }
    EXPECT_EQ(checked, 7);
    // runs are column-major, starting with 0s
    const at::Tensor m = at::tensor({0, 1, 1, 1, 0, 0}, at::kByte).view({2, 3});  // columns: (0,1) (1,0) (1,0)
    EXPECT_EQ(gdino::encode_rle(m).counts, (std::vector<uint32_t>{1, 2, 1, 1, 1}));
    EXPECT_EQ(gdino::encode_rle(at::ones({2, 2}, at::kBool)).counts, (std::vector<uint32_t>{0, 4}));
    EXPECT_EQ(gdino::encode_rle(at::zeros({0, 3}, at::kBool)).counts, (std::vector<uint32_t>{0}));
}

TEST(DetectPostprocess, BadArguments) {
    const at::Tensor logits = at::randn({10, 8}), boxes = at::rand({10, 4});
    auto err = [&](auto fn) { return error_of(fn); };
    auto has = [](const std::string & e, const std::string & what) {
        return e.find(what) != std::string::npos ? ::testing::AssertionSuccess()
                                                 : ::testing::AssertionFailure() << "'" << e << "' lacks '" << what << "'";
    };
    EXPECT_TRUE(has(err([&] { gdino::post_process_detections(logits, boxes, 0, 5, 10, 10); }), "num_classes"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_detections(logits, boxes, 9, 5, 10, 10); }), "num_classes must be in [1, 8]"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_detections(logits, boxes, 3, 0, 10, 10); }), "topk"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_detections(logits, boxes, 3, 5, 0, 10); }), "image size"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_detections(logits, at::rand({9, 4}), 3, 5, 10, 10); }), "boxes"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_detections(logits, at::rand({10, 5}), 3, 5, 10, 10); }), "boxes"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_detections(at::randn({10}), boxes, 3, 5, 10, 10); }), "logits"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_detections(at::randn({2, 10, 8}), boxes, 3, 5, 10, 10); }), "logits"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_detections(at::ones({10, 8}, at::kLong), boxes, 3, 5, 10, 10); }),
                    "logits must be a floating-point"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_detections(logits, boxes, 3, 5, 10, 10, NAN); }), "threshold"));

    const at::Tensor ml = at::randn({3, 8, 8});
    EXPECT_TRUE(has(err([&] { gdino::post_process_masks(ml, 33, 20, 50, 40); }), "resized size 33x20"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_masks(ml, 0, 20, 50, 40); }), "resized size"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_masks(ml, 30, 20, 0, 40); }), "original size"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_masks(ml, 30, 20, 50, 40, 0); }), "mask_stride"));
    EXPECT_TRUE(has(err([&] { gdino::post_process_masks(at::randn({8, 8}), 30, 20, 50, 40); }), "mask_logits"));
    EXPECT_TRUE(has(err([&] { gdino::encode_rle(at::ones({2, 2, 2}, at::kBool)); }), "2-D"));
    EXPECT_TRUE(has(err([&] { gdino::encode_rle(at::ones({2, 2})); }), "bool or integer"));
    // no masks: an empty result of the right shape
    EXPECT_EQ(gdino::post_process_masks(at::randn({0, 8, 8}), 30, 20, 50, 40).sizes(), (std::vector<int64_t>{0, 40, 50}));
}

TEST(DetectPostprocess, CudaMatchesCpu) {
    if (!cuda_usable()) GTEST_SKIP() << "no usable CUDA device";
    // well-separated scores (no ties, whose order is each device's own; logits 0.002 apart): the same detections
    at::manual_seed(3);
    const at::Tensor logits = at::randperm(300 * 16, at::kLong).to(at::kFloat).view({300, 16}) * 0.002 - 4,
                     boxes = at::rand({300, 4});
    const auto cpu = gdino::post_process_detections(logits, boxes, 11, 100, 1333, 800);
    const auto gpu = gdino::post_process_detections(logits.cuda(), boxes.cuda(), 11, 100, 1333, 800);
    ASSERT_EQ(gpu.size(), cpu.size());
    for (size_t i = 0; i < cpu.size(); ++i) {
        EXPECT_EQ(gpu[i].query, cpu[i].query) << i;
        EXPECT_EQ(gpu[i].label, cpu[i].label) << i;
        EXPECT_NEAR(gpu[i].score, cpu[i].score, 1e-6) << i;
        for (int j = 0; j < 4; ++j) EXPECT_NEAR(gpu[i].box[j], cpu[i].box[j], 1e-3) << i;
    }
    // masks: the CUDA bilinear kernels may round differently; at most a few boundary pixels may flip
    const at::Tensor ml = at::randn({4, 25, 34}) * 3;
    const at::Tensor mc = gdino::post_process_masks(ml, 130, 97, 211, 160);
    const at::Tensor mg = gdino::post_process_masks(ml.cuda(), 130, 97, 211, 160);
    ASSERT_TRUE(mg.is_cuda());
    EXPECT_LE(mc.ne(mg.cpu()).sum().item<int64_t>(), 4 * 211 * 160 / 1000);
}
