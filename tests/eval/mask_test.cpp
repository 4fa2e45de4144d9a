// COCO RLE masks against pycocotools.mask (tests/data/golden/eval/mask_api.json from tools/golden/cocoeval.py):
// polygons, boxes, uncompressed counts -> compressed strings, areas, boxes; IoU (masks and boxes, crowd or not);
// merges. Plus round trips and malformed strings.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "common/test_util.h"
#include "eval/mask.h"
#include "visionllm/error.h"

using namespace visionllm;
using nlohmann::json;

namespace {

json golden() { return json::parse(test::read_file(test::golden_dir("eval") + "/mask_api.json")); }

void expect_bbox(const eval::Rle & r, const json & want) {
    double bb[4];
    eval::rle_to_bbox(r, bb);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(bb[i], want[i].get<double>()) << "bbox[" << i << "]";
}

}  // namespace

TEST(CocoMask, PolygonsMatchPycocotools) {
    const json g = golden();
    ASSERT_GE(g["polygons"].size(), 20u);
    for (const auto & c : g["polygons"]) {
        SCOPED_TRACE(c.dump());
        const auto xy = c["polygon"].get<std::vector<double>>();
        const auto r = eval::rle_from_polygon(xy.data(), int64_t(xy.size() / 2), c["h"], c["w"]);
        EXPECT_EQ(eval::rle_to_string(r), c["counts"].get<std::string>());
        EXPECT_EQ(eval::rle_area(r), c["area"].get<uint32_t>());
        expect_bbox(r, c["bbox"]);
    }
}

TEST(CocoMask, BoxesMatchPycocotools) {
    const json g = golden();  // kept alive for the loop
    ASSERT_GE(g["boxes"].size(), 5u);
    for (const auto & c : g["boxes"]) {
        SCOPED_TRACE(c.dump());
        const auto b = c["box"].get<std::vector<double>>();
        const auto r = eval::rle_from_bbox(b.data(), c["h"], c["w"]);
        EXPECT_EQ(eval::rle_to_string(r), c["counts"].get<std::string>());
        EXPECT_EQ(eval::rle_area(r), c["area"].get<uint32_t>());
        expect_bbox(r, c["bbox"]);
    }
}

TEST(CocoMask, UncompressedCountsAndStringsRoundTrip) {
    const json g = golden();  // kept alive for the loop
    ASSERT_GE(g["uncompressed"].size(), 8u);
    for (const auto & c : g["uncompressed"]) {
        SCOPED_TRACE(c.dump());
        eval::Rle r{c["h"], c["w"], c["counts_list"].get<std::vector<uint32_t>>()};
        const std::string s = eval::rle_to_string(r);
        EXPECT_EQ(s, c["counts"].get<std::string>());
        EXPECT_EQ(eval::rle_area(r), c["area"].get<uint32_t>());
        expect_bbox(r, c["bbox"]);
        const auto back = eval::rle_from_string(s, r.h, r.w);
        EXPECT_EQ(back.counts, r.counts);
        // decode -> encode gives the same runs (up to pycocotools' trailing empty runs)
        const auto m = eval::rle_decode(r);
        EXPECT_EQ(eval::rle_to_string(eval::rle_encode(m.data(), r.h, r.w)), eval::rle_to_string(eval::rle_encode(eval::rle_decode(back).data(), r.h, r.w)));
    }
}

TEST(CocoMask, IouMatchesPycocotools) {
    const json g = golden();
    ASSERT_GE(g["iou"].size(), 30u);
    ASSERT_GE(g["bbox_iou"].size(), 30u);
    for (const auto & c : g["iou"]) {
        SCOPED_TRACE(c.dump());
        const int64_t h = c["h"], w = c["w"];
        const int64_t gh = c.value("gt_h", h), gw = c.value("gt_w", w);
        const auto d = eval::rle_from_string(c["dt"].get<std::string>(), h, w);
        const auto gt = eval::rle_from_string(c["gt"].get<std::string>(), gh, gw);
        EXPECT_DOUBLE_EQ(eval::rle_iou(d, gt, c["iscrowd"].get<int>() != 0), c["iou"].get<double>());
    }
    for (const auto & c : g["bbox_iou"]) {
        SCOPED_TRACE(c.dump());
        const auto d = c["dt"].get<std::vector<double>>(), gt = c["gt"].get<std::vector<double>>();
        EXPECT_DOUBLE_EQ(eval::bbox_iou(d.data(), gt.data(), c["iscrowd"].get<int>() != 0), c["iou"].get<double>());
    }
}

TEST(CocoMask, MergeMatchesPycocotools) {
    const json g = golden();  // kept alive for the loop
    ASSERT_GE(g["merge"].size(), 8u);
    for (const auto & c : g["merge"]) {
        SCOPED_TRACE(c.dump());
        std::vector<eval::Rle> in;
        const auto & ins = c["inputs"];
        for (size_t i = 0; i < ins.size(); ++i) {
            int64_t h = c["h"], w = c["w"];
            if (c.contains("input_sizes")) h = c["input_sizes"][i][0], w = c["input_sizes"][i][1];
            in.push_back(eval::rle_from_string(ins[i].get<std::string>(), h, w));
        }
        std::vector<const eval::Rle *> ptrs;
        for (const auto & r : in) ptrs.push_back(&r);
        const auto u = eval::rle_merge(ptrs, false);
        EXPECT_EQ(eval::rle_to_string(u), c["union"].get<std::string>());
        if (c.contains("union_size")) {
            EXPECT_EQ(u.h, c["union_size"][0].get<int64_t>());
            EXPECT_EQ(u.w, c["union_size"][1].get<int64_t>());
        } else {
            EXPECT_EQ(eval::rle_area(u), c["union_area"].get<uint32_t>());
        }
        if (c.contains("intersection")) {
            const auto x = eval::rle_merge(ptrs, true);
            EXPECT_EQ(eval::rle_to_string(x), c["intersection"].get<std::string>());
            EXPECT_EQ(eval::rle_area(x), c["intersection_area"].get<uint32_t>());
        }
    }
}

TEST(CocoMask, EncodeDecodeRandomMasks) {
    std::mt19937 rng(7);
    for (int trial = 0; trial < 50; ++trial) {
        const int64_t h = 1 + rng() % 13, w = 1 + rng() % 11;
        std::vector<uint8_t> m(size_t(h * w));
        const unsigned density = rng() % 4;
        for (auto & v : m) v = (rng() % 4) < density;
        const auto r = eval::rle_encode(m.data(), h, w);
        EXPECT_EQ(eval::rle_decode(r), m);
        uint32_t ones = 0;
        for (auto v : m) ones += v;
        EXPECT_EQ(eval::rle_area(r), ones);
        const auto s = eval::rle_to_string(r);
        EXPECT_EQ(eval::rle_from_string(s, h, w).counts, r.counts);
        // IoU with itself is 1 unless empty
        EXPECT_DOUBLE_EQ(eval::rle_iou(r, r, false), ones ? 1.0 : 0.0);
    }
}

TEST(CocoMask, MalformedStringsAreClearErrors) {
    auto err = [](const std::string & s, int64_t h, int64_t w) {
        return test::error_of([&] { eval::rle_from_string(s, h, w, "results[3] segmentation"); });
    };
    EXPECT_NE(err("0~", 2, 2).find("results[3] segmentation: character 1 ('~') is not a compressed RLE digit"),
              std::string::npos);
    EXPECT_NE(err("0", 2, 2).find("the runs cover 0 pixels but the size is 2 x 2"), std::string::npos);
    EXPECT_NE(err("o", 2, 2).find("in the middle of a number"), std::string::npos);
    EXPECT_EQ(err("4", 2, 2), "");  // one run of 4 zeros: an empty 2 x 2 mask
    EXPECT_NE(err("9", 2, 2).find("run 0 has length 9"), std::string::npos);
    EXPECT_NE(err("0", -1, 2).find("negative or too large"), std::string::npos);
    const double nan_poly[6] = {0, 0, NAN, 1, 1, 1};
    EXPECT_NE(test::error_of([&] { eval::rle_from_polygon(nan_poly, 3, 4, 4); }).find("not finite"), std::string::npos);
}
