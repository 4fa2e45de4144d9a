// Visual-prompt rasterisation: boxes as boxes_to_masks after the float32 scaling,
// masks / points / scribbles through torch's bilinear resize + .bool(). The mask path
// is checked exactly against at::upsample_bilinear2d (when this libtorch fuses the
// index math, as its AVX2 / AVX-512 kernels do) and against a golden made by Python
// torch on the one small size where fused and twice-rounded math differ.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>

#include "common/test_util.h"
#include "vision/visual_prompt.h"
#include "visionllm/checkpoint.h"

using namespace visionllm;
using vision::VisualPrompt;
using visionllm::test::error_of;

namespace {

VisualPrompt box(double x1, double y1, double x2, double y2) {
    VisualPrompt p;
    p.kind = VisualPrompt::Kind::Box;
    p.coords = {x1, y1, x2, y2};
    return p;
}

VisualPrompt point(double x, double y) {
    VisualPrompt p;
    p.kind = VisualPrompt::Kind::Point;
    p.coords = {x, y};
    return p;
}

VisualPrompt scribble(std::vector<double> c) {
    VisualPrompt p;
    p.kind = VisualPrompt::Kind::Scribble;
    p.coords = std::move(c);
    return p;
}

io::Image to_image(const at::Tensor & hw) {
    io::Image m;
    m.height = hw.size(0);
    m.width = hw.size(1);
    m.channels = 1;
    const at::Tensor c = hw.to(at::kByte).contiguous();
    m.data.assign(c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel());
    return m;
}

VisualPrompt mask_prompt(const at::Tensor & hw) {
    VisualPrompt p;
    p.kind = VisualPrompt::Kind::Mask;
    p.mask = to_image(hw);
    return p;
}

// the reference: F.interpolate(mask.float()[None, None], (S, S), bilinear, align_corners=False).bool()
at::Tensor torch_resize(const at::Tensor & hw, int64_t S) {
    const at::Tensor m = hw.to(at::kFloat).unsqueeze(0).unsqueeze(0);
    return (at::upsample_bilinear2d(m, {S, S}, /*align_corners=*/false)[0][0] != 0).to(at::kFloat);
}

// does this libtorch compute scale * (dst + 0.5) - 0.5 as one FMA? (112 -> 336, output 1:
// fused 1.49e-8 on source 1, twice rounded exactly 0)
bool torch_fuses() {
    at::Tensor m = at::zeros({1, 112});
    m[0][1] = 1;
    const at::Tensor o = at::upsample_bilinear2d(m.view({1, 1, 1, 112}), {1, 336}, false);
    return o[0][0][0][1].item<float>() > 0;
}

at::Tensor box_expected(int64_t S, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
    at::Tensor e = at::zeros({S, S});
    e.slice(0, r0, r1 + 1).slice(1, c0, c1 + 1).fill_(1);
    return e;
}

int64_t count(const at::Tensor & m) { return m.sum().item<int64_t>(); }

bool contains(const std::string & s, const std::string & sub) { return s.find(sub) != std::string::npos; }

}  // namespace

// ---------------------------------------------------------------- boxes

TEST(VisualPrompt, BoxAtTheImageScaleFillsInclusively) {
    const at::Tensor m = vision::rasterize_prompt(box(10, 20, 30, 40), 56, 56, 56);
    EXPECT_TRUE(at::equal(m, box_expected(56, 20, 40, 10, 30)));
    EXPECT_EQ(count(m), 21 * 21);
    // fractional coordinates truncate: 10.9 -> 10, 30.99 -> 30
    EXPECT_TRUE(at::equal(vision::rasterize_prompt(box(10.9, 20.5, 30.99, 40.2), 56, 56, 56), m));
}

TEST(VisualPrompt, BoxScalesLikeTheOfficialEval) {
    // 90x24 -> 56: x * 56/90, y * 56/24 in float32, truncated
    // x: 12.3 -> 7.65 -> 7, 47.9 -> 29.80 -> 29; y: 3.7 -> 8.63 -> 8, 15.2 -> 35.47 -> 35
    EXPECT_TRUE(
        at::equal(vision::rasterize_prompt(box(12.3, 3.7, 47.9, 15.2), 90, 24, 56), box_expected(56, 8, 35, 7, 29)));
    // 640x480 -> 336
    // x: 100 -> 52.5 -> 52, 300 -> 157.5 -> 157; y: 50 -> 35, 450 -> 315
    EXPECT_TRUE(at::equal(vision::rasterize_prompt(box(100, 50, 300, 450), 640, 480, 336),
                          box_expected(336, 35, 315, 52, 157)));
}

TEST(VisualPrompt, BoxOnTheBorder) {
    const int64_t W = 90, H = 24, S = 56;
    EXPECT_EQ(count(vision::rasterize_prompt(box(0, 0, W, H), W, H, S)), S * S);
    // the bottom-right pixel: x 89 -> 55.38 -> 55, 90 -> 56 -> clamped 55; y 23 -> 53.67 -> 53, 24 -> 55
    EXPECT_TRUE(at::equal(vision::rasterize_prompt(box(W - 1, H - 1, W, H), W, H, S), box_expected(S, 53, 55, 55, 55)));
    // a degenerate box on the right / bottom edge is the last column / row
    EXPECT_TRUE(at::equal(vision::rasterize_prompt(box(W, 0, W, H), W, H, S), box_expected(S, 0, 55, 55, 55)));
    EXPECT_TRUE(at::equal(vision::rasterize_prompt(box(0, H, W, H), W, H, S), box_expected(S, 55, 55, 0, 55)));
    EXPECT_TRUE(at::equal(vision::rasterize_prompt(box(0, 0, 0, 0), W, H, S), box_expected(S, 0, 0, 0, 0)));
}

TEST(VisualPrompt, BoxLargerThanTheImageIsClamped) {
    const int64_t W = 90, H = 24, S = 56;
    EXPECT_EQ(count(vision::rasterize_prompt(box(-50, -50, W + 50, H + 50), W, H, S)), S * S);
    EXPECT_EQ(count(vision::rasterize_prompt(box(-1e30, -1e30, 1e30, 1e30), W, H, S)), S * S);
    // x: -10 -> 0, 20 -> 12.44 -> 12; y: 5 -> 11.67 -> 11, 1e9 -> 55
    EXPECT_TRUE(at::equal(vision::rasterize_prompt(box(-10, 5, 20, 1e9), W, H, S), box_expected(S, 11, 55, 0, 12)));
}

TEST(VisualPrompt, DegenerateBoxesAreOnePixel) {
    const int64_t W = 640, H = 480, S = 336;
    for (const auto & [x, y] :
         std::vector<std::pair<double, double>>{{0, 0}, {1, 1}, {639.5, 479.5}, {320, 240}, {12.34, 400.01}}) {
        const at::Tensor m = vision::rasterize_prompt(box(x, y, x, y), W, H, S);
        ASSERT_EQ(count(m), 1) << x << "," << y;
        const int64_t cx = int64_t(float(x) / float(W) * float(S)), cy = int64_t(float(y) / float(H) * float(S));
        EXPECT_EQ(m[cy][cx].item<float>(), 1.f) << x << "," << y;
    }
    // a zero-width box is one column
    EXPECT_EQ(count(vision::rasterize_prompt(box(100, 0, 100, 480), W, H, S)), S);
}

// ---------------------------------------------------------------- masks, points, scribbles

TEST(VisualPrompt, MaskResizeUpAndDownMatchesTorch) {
    if (!torch_fuses()) {
        GTEST_SKIP() << "this libtorch's upsample kernel rounds scale*(dst+0.5)-0.5 twice (CPU capability below "
                        "AVX2 or ATEN_CPU_CAPABILITY=default); the fused golden case still runs";
    }
    at::manual_seed(11);
    const std::vector<std::pair<int64_t, int64_t>> sizes = {{7, 5},     {24, 90},   {90, 24},     {112, 112},
                                                            {8, 8},     {1, 1},     {1, 400},     {336, 336},
                                                            {337, 335}, {500, 300}, {1000, 1000}, {168, 672}};
    for (const auto & [w, h] : sizes) {
        for (int64_t S : {56, 336}) {
            for (double density : {0.002, 0.05, 0.5}) {
                at::Tensor m = (at::rand({h, w}) < density).to(at::kByte);
                m[h / 2][w / 2] = 1;  // never empty
                const at::Tensor want = torch_resize(m, S);
                if (count(want) == 0) {  // a sparse mask can vanish when shrunk: an error here
                    const std::string e = error_of([&] { vision::rasterize_prompt(mask_prompt(m), w, h, S); });
                    EXPECT_TRUE(contains(e, "empty")) << w << "x" << h << " -> " << S << ": " << e;
                    continue;
                }
                const at::Tensor got = vision::rasterize_prompt(mask_prompt(m), w, h, S);
                EXPECT_TRUE(at::equal(got, want)) << w << "x" << h << " -> " << S << " density " << density << ": "
                                                  << (got != want).sum().item<int64_t>() << " pixels differ";
            }
        }
    }
    // any nonzero value is inside, as .bool() after the resize
    at::Tensor m = at::zeros({30, 40}, at::kByte);
    m[3][4] = 255;
    m[20][30] = 7;
    EXPECT_TRUE(at::equal(vision::rasterize_prompt(mask_prompt(m), 40, 30, 56), torch_resize(m, 56)));
}

TEST(VisualPrompt, FusedIndexMathMatchesTheTorchGolden) {
    // made by Python torch (AVX2) in tools/golden/region.py: 8 -> 56 output row 3 reads source row 1
    const WeightMap g = WeightMap::open(test::golden_dir("region") + "/cases.safetensors");
    const at::Tensor want = g.get("fma_mask_out").to(at::kFloat);
    const at::Tensor got = vision::rasterize_prompt(mask_prompt(g.get("fma_mask")), 8, 8, 56);
    EXPECT_TRUE(at::equal(got, want)) << (got != want).sum().item<int64_t>() << " pixels differ";
    EXPECT_GT(got[3].sum().item<float>(), 0.f);
}

TEST(VisualPrompt, PointsAtTheCornersAndInside) {
    const bool fused = torch_fuses();
    for (const auto & [W, H, S] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
             {90, 24, 56}, {640, 480, 336}, {100, 100, 336}, {336, 336, 336}, {20, 700, 56}}) {
        const std::vector<std::pair<double, double>> pts = {{0, 0},         {double(W), double(H)}, {double(W), 0},
                                                            {0, double(H)}, {W - 0.5, H - 0.5},     {W / 3.0, H / 2.0}};
        for (const auto & [x, y] : pts) {
            const int64_t px = std::min<int64_t>(int64_t(x), W - 1), py = std::min<int64_t>(int64_t(y), H - 1);
            at::Tensor one = at::zeros({H, W}, at::kByte);
            one[py][px] = 1;
            at::Tensor got;
            const std::string e = error_of([&] { got = vision::rasterize_prompt(point(x, y), W, H, S); });
            if (!e.empty()) {  // only a shrunk image can lose a one-pixel point
                EXPECT_TRUE(W > S || H > S) << e;
                EXPECT_TRUE(contains(e, "empty")) << e;
                continue;
            }
            // the same as the mask path on the one-pixel mask
            EXPECT_TRUE(at::equal(got, vision::rasterize_prompt(mask_prompt(one), W, H, S))) << x << "," << y;
            if (fused) EXPECT_TRUE(at::equal(got, torch_resize(one, S))) << W << "x" << H << " " << x << "," << y;
            // corners land on the corners
            if (x == 0 && y == 0) EXPECT_EQ(got[0][0].item<float>(), 1.f) << W << "x" << H;
            if (x == W && y == H) EXPECT_EQ(got[S - 1][S - 1].item<float>(), 1.f) << W << "x" << H;
            if (x == W && y == 0) EXPECT_EQ(got[0][S - 1].item<float>(), 1.f) << W << "x" << H;
            if (x == 0 && y == H) EXPECT_EQ(got[S - 1][0].item<float>(), 1.f) << W << "x" << H;
        }
    }
}

TEST(VisualPrompt, PointCanVanishOnAShrunkImage) {
    // 1000 -> 336: each output column reads 2 of ~3 source columns, so some columns are never read
    int vanished = 0, kept = 0;
    for (int x = 0; x < 12; ++x) {
        const std::string e = error_of([&] { vision::rasterize_prompt(point(x + 0.5, 500.5), 1000, 1000, 336); });
        if (e.empty()) {
            ++kept;
        } else {
            ++vanished;
            EXPECT_TRUE(contains(e, "visual prompt (point)") && contains(e, "empty")) << e;
        }
    }
    EXPECT_GT(vanished, 0);
    EXPECT_GT(kept, 0);
    // a huge image is not materialised for a point or a scribble (100000 -> 336: output 0 reads
    // source 148 and 149)
    const at::Tensor m = vision::rasterize_prompt(point(148.5, 149.5), 100000, 100000, 336);
    EXPECT_EQ(count(m), 1);
    EXPECT_EQ(m[0][0].item<float>(), 1.f);
    EXPECT_EQ(count(vision::rasterize_prompt(scribble({0, 148, 100000, 148}), 100000, 100000, 336)), 336);
}

TEST(VisualPrompt, ScribbleIsABresenhamPolylineThroughTheMaskPath) {
    const int64_t W = 40, H = 30;
    at::Tensor dense = at::zeros({H, W}, at::kByte);
    for (int x = 2; x <= 20; ++x) dense[5][x] = 1;           // (2,5) -> (20,5)
    for (int y = 5; y <= 25; ++y) dense[y][20] = 1;          // (20,5) -> (20,25)
    for (int i = 0; i <= 5; ++i) dense[25 - i][20 + i] = 1;  // (20,25) -> (25,20), 45 degrees
    const VisualPrompt s = scribble({2.2, 5.9, 20, 5, 20.5, 25.5, 25.99, 20});
    for (int64_t S : {28, 56, 336}) {
        const at::Tensor got = vision::rasterize_prompt(s, W, H, S);
        EXPECT_TRUE(at::equal(got, vision::rasterize_prompt(mask_prompt(dense), W, H, S))) << S;
        if (torch_fuses()) EXPECT_TRUE(at::equal(got, torch_resize(dense, S))) << S;
    }
    // at the image's own size the scribble is the drawn pixels
    EXPECT_TRUE(at::equal(vision::rasterize_prompt(scribble({0, 0, 9, 9}), 10, 10, 10), at::eye(10)));
    // a steep line includes both ends and one pixel per row
    const at::Tensor steep = vision::rasterize_prompt(scribble({1, 0, 3, 9}), 10, 10, 10);
    EXPECT_EQ(count(steep), 10);
    EXPECT_EQ(steep[0][1].item<float>(), 1.f);
    EXPECT_EQ(steep[9][3].item<float>(), 1.f);
    for (int y = 0; y < 10; ++y) EXPECT_EQ(steep[y].sum().item<float>(), 1.f) << y;
}

TEST(VisualPrompt, RasterizePromptsStacksAndNumbersErrors) {
    const std::vector<VisualPrompt> ps = {box(0, 0, 10, 10), point(5, 5), scribble({0, 0, 20, 20})};
    const at::Tensor m = vision::rasterize_prompts(ps, 40, 30, 56);
    ASSERT_EQ(m.sizes(), (std::vector<int64_t>{3, 1, 56, 56}));
    EXPECT_EQ(m.scalar_type(), at::kFloat);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(at::equal(m[i][0], vision::rasterize_prompt(ps[i], 40, 30, 56)));
    EXPECT_EQ(vision::rasterize_prompts({}, 40, 30, 56).sizes(), (std::vector<int64_t>{0, 1, 56, 56}));
    const std::string e = error_of([&] { vision::rasterize_prompts({box(0, 0, 1, 1), point(99, 1)}, 40, 30, 56); });
    EXPECT_TRUE(contains(e, "visual prompt 2 (point)") && contains(e, "outside")) << e;
}

// ---------------------------------------------------------------- errors

TEST(VisualPrompt, BadPromptsAreErrors) {
    const int64_t W = 90, H = 24, S = 56;
    auto err = [&](const VisualPrompt & p) { return error_of([&] { vision::rasterize_prompt(p, W, H, S); }); };
    const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
    VisualPrompt b3 = box(0, 0, 1, 1);
    b3.coords.pop_back();
    EXPECT_TRUE(contains(err(b3), "4 coordinates")) << err(b3);
    EXPECT_TRUE(contains(err(box(0, nan, 1, 1)), "not a finite")) << err(box(0, nan, 1, 1));
    EXPECT_TRUE(contains(err(box(0, 0, inf, 1)), "not a finite"));
    EXPECT_TRUE(contains(err(box(5, 0, 4, 1)), "x2 < x1"));
    EXPECT_TRUE(contains(err(box(0, 5, 4, 1)), "y2 < y1"));
    EXPECT_TRUE(contains(err(box(91, 0, 95, 5)), "entirely outside"));
    EXPECT_TRUE(contains(err(box(0, -9, 5, -1)), "entirely outside"));
    EXPECT_TRUE(contains(err(box(-9, 0, -0.5, 5)), "entirely outside"));
    EXPECT_TRUE(contains(err(box(0, 25, 5, 30)), "entirely outside"));
    EXPECT_TRUE(err(point(1, 2)).empty()) << err(point(1, 2));
    VisualPrompt p3 = point(1, 2);
    p3.coords.push_back(3);
    EXPECT_TRUE(contains(err(p3), "2 coordinates"));
    EXPECT_TRUE(contains(err(point(-0.1, 2)), "outside"));
    EXPECT_TRUE(contains(err(point(1, 24.01)), "outside"));
    EXPECT_TRUE(contains(err(point(nan, 2)), "not a finite"));
    EXPECT_TRUE(contains(err(scribble({1, 2})), "even number (>= 4)"));
    EXPECT_TRUE(contains(err(scribble({1, 2, 3})), "even number (>= 4)"));
    EXPECT_TRUE(contains(err(scribble({1, 2, 3, 4, 500, 5})), "vertex 3")) << err(scribble({1, 2, 3, 4, 500, 5}));
    EXPECT_TRUE(contains(err(scribble({1, 2, inf, 4})), "not a finite"));

    VisualPrompt m = mask_prompt(at::ones({H, W}));
    EXPECT_TRUE(err(m).empty());
    VisualPrompt small = mask_prompt(at::ones({H, W - 1}));
    EXPECT_TRUE(contains(err(small), "the mask is 89x24 but the image is 90x24")) << err(small);
    VisualPrompt rgb = m;
    rgb.mask.channels = 3;
    EXPECT_TRUE(contains(err(rgb), "1 channel"));
    VisualPrompt shortdata = m;
    shortdata.mask.data.resize(10);
    EXPECT_TRUE(contains(err(shortdata), "bytes"));
    const std::string empty = err(mask_prompt(at::zeros({H, W})));
    EXPECT_TRUE(contains(empty, "visual prompt (mask)") && contains(empty, "empty")) << empty;

    EXPECT_TRUE(contains(error_of([&] { vision::rasterize_prompt(box(0, 0, 1, 1), 0, 24, 56); }), "image size"));
    EXPECT_TRUE(contains(error_of([&] { vision::rasterize_prompt(box(0, 0, 1, 1), 90, 24, 0); }), "mask size S"));
}

TEST(VisualPrompt, ParseCliText) {
    VisualPrompt b = vision::parse_box(" 1.5, 2 ,3,4e1 ");
    EXPECT_EQ(b.kind, VisualPrompt::Kind::Box);
    EXPECT_EQ(b.coords, (std::vector<double>{1.5, 2, 3, 40}));
    VisualPrompt p = vision::parse_point("10,-0");
    EXPECT_EQ(p.kind, VisualPrompt::Kind::Point);
    EXPECT_EQ(p.coords, (std::vector<double>{10, 0}));
    VisualPrompt s = vision::parse_scribble("0,0,5,5,10,0");
    EXPECT_EQ(s.kind, VisualPrompt::Kind::Scribble);
    EXPECT_EQ(s.coords.size(), 6u);

    for (const std::string t : {"1,2,3", "1,2,3,4,5", "", "a,b,c,d", "1,,3,4", "1,2,3,4,", "nan,1,2,3", "1,2,inf,4",
                                "1,2,3,4x", "1e999,0,2,2", "5,0,4,1"}) {
        const std::string e = error_of([&] { vision::parse_box(t); });
        EXPECT_TRUE(contains(e, "box \"" + t + "\"")) << t << ": " << e;
    }
    for (const std::string t : {"1", "1,2,3", "x,1", ""}) {
        const std::string e = error_of([&] { vision::parse_point(t); });
        EXPECT_TRUE(contains(e, "point \"" + t + "\"")) << t << ": " << e;
    }
    for (const std::string t : {"1,2", "1,2,3", "1,2,3,4,5", "1,2,3,q"}) {
        const std::string e = error_of([&] { vision::parse_scribble(t); });
        EXPECT_TRUE(contains(e, "scribble \"" + t + "\"")) << t << ": " << e;
    }
}
