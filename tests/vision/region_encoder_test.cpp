// RegionEncoder against a PyTorch reference of the official module
// (tests/data/golden/region, made by tools/golden/region.py; S = 56, C = 32, out = 64):
// fp32 within 1e-4 relative for every prompt kind, the rasterised prompt masks identical,
// bf16 close to the reference run in bf16; the pooling weights against at::grid_sampler_2d;
// the seeded subsample; and the errors a caller can run into.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <chrono>

#include "common/test_util.h"
#include "io/writers.h"
#include "vision/layout.h"
#include "vision/region_encoder.h"
#include "vision/visual_prompt.h"
#include "visionllm/checkpoint.h"

using namespace visionllm;
using vision::RegionEncoder;
using visionllm::test::error_of;

namespace {

constexpr int64_t kS = 56, kC = 32, kOut = 64, kCases = 6;
const char * const kCaseNames[kCases] = {"box", "point", "scribble", "mask", "random", "empty"};

struct Golden {
    WeightMap weights = WeightMap::open(test::golden_dir("region") + "/weights.safetensors");
    WeightMap cases = WeightMap::open(test::golden_dir("region") + "/cases.safetensors");
    at::Tensor get(const std::string & name) const { return cases.get(name).clone(); }
    at::Tensor image() const { return get("image").to(at::kFloat); }  // [1, 3, S, S]
    at::Tensor masks() const { return get("masks").to(at::kFloat); }  // [6, 1, S, S]
    std::vector<at::Tensor> features() const {
        return {get("features_0").to(at::kFloat), get("features_1").to(at::kFloat), get("features_2").to(at::kFloat)};
    }
    RegionEncoder encoder(at::ScalarType dtype) const {
        return RegionEncoder(weights.view("region_encoder."), kC, kOut,
                             llm::Loader{c10::Device(c10::kCPU), dtype, false});
    }
};

const Golden & golden() {
    static const Golden g;
    return g;
}

// max |got - want| relative to max |want|
double rel_err(const at::Tensor & got, const at::Tensor & want) {
    return (got.to(at::kDouble) - want.to(at::kDouble)).abs().max().item<double>() /
           want.to(at::kDouble).abs().max().item<double>();
}

at::Tensor expand_images(const at::Tensor & image, int64_t n) { return image.expand({n, -1, -1, -1}).contiguous(); }

io::Image to_image(const at::Tensor & hw_u8) {
    io::Image m;
    m.height = hw_u8.size(0);
    m.width = hw_u8.size(1);
    m.channels = 1;
    at::Tensor c = hw_u8.to(at::kByte).contiguous();
    m.data.assign(c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel());
    return m;
}

std::vector<double> to_doubles(const at::Tensor & t) {
    at::Tensor c = t.to(at::kDouble).contiguous();
    return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
}

}  // namespace

TEST(RegionEncoder, Fp32MatchesReferenceForEveryPromptKind) {
    const Golden & g = golden();
    const RegionEncoder enc = g.encoder(at::kFloat);
    const at::Tensor masks = g.masks();
    const at::Tensor out = enc.forward(expand_images(g.image(), kCases), masks, g.features());
    const at::Tensor want = g.get("out_f32");
    ASSERT_EQ(out.sizes(), want.sizes());
    ASSERT_EQ(out.scalar_type(), at::kFloat);
    for (int64_t i = 0; i < kCases; ++i) {
        EXPECT_LT(rel_err(out[i], want[i]), 1e-4) << kCaseNames[i];
    }
}

TEST(RegionEncoder, BatchedEqualsOneRegionAtATimeAndFullFeatureBatch) {
    const Golden & g = golden();
    const RegionEncoder enc = g.encoder(at::kFloat);
    const at::Tensor masks = g.masks();
    const at::Tensor all = enc.forward(expand_images(g.image(), kCases), masks, g.features());
    // features given per region ([n, P, C]) instead of broadcast from [1, P, C]
    std::vector<at::Tensor> full;
    for (const at::Tensor & f : g.features()) full.push_back(f.expand({kCases, -1, -1}).contiguous());
    EXPECT_TRUE(at::allclose(enc.forward(expand_images(g.image(), kCases), masks, full), all, 1e-6, 1e-6));
    for (int64_t i = 0; i < kCases; ++i) {
        const at::Tensor one = enc.forward(g.image(), masks.slice(0, i, i + 1), g.features());
        EXPECT_TRUE(at::allclose(one[0], all[i], 1e-5, 1e-6)) << kCaseNames[i];
    }
    // a bool mask is the same as a float 0/1 one
    EXPECT_TRUE(at::allclose(enc.forward(expand_images(g.image(), kCases), masks.to(at::kBool), g.features()), all));
}

TEST(RegionEncoder, EmptyMaskGivesUpDimBias) {
    const Golden & g = golden();
    const RegionEncoder enc = g.encoder(at::kFloat);
    const at::Tensor out = enc.forward(g.image(), at::zeros({1, 1, kS, kS}), g.features());
    const at::Tensor bias = g.weights.get("region_encoder.up_dim.bias").to(at::kFloat);
    EXPECT_TRUE(at::equal(out[0], bias));
    EXPECT_TRUE(at::equal(out[0], g.get("out_f32")[5]));
}

TEST(RegionEncoder, RasterisedPromptMasksAreIdenticalToReference) {
    const Golden & g = golden();
    const at::Tensor size = g.get("image_size");
    const int64_t W = size[0].item<int64_t>(), H = size[1].item<int64_t>();
    const at::Tensor masks = g.masks();

    std::vector<vision::VisualPrompt> ps(4);
    ps[0].kind = vision::VisualPrompt::Kind::Box;
    ps[0].coords = to_doubles(g.get("prompt_box"));
    ps[1].kind = vision::VisualPrompt::Kind::Point;
    ps[1].coords = to_doubles(g.get("prompt_point"));
    ps[2].kind = vision::VisualPrompt::Kind::Scribble;
    ps[2].coords = to_doubles(g.get("prompt_scribble"));
    ps[3].kind = vision::VisualPrompt::Kind::Mask;
    ps[3].mask = to_image(g.get("prompt_mask"));
    for (int i = 0; i < 4; ++i) {
        const at::Tensor m = vision::rasterize_prompt(ps[i], W, H, kS);
        ASSERT_EQ(m.sizes(), (std::vector<int64_t>{kS, kS}));
        EXPECT_TRUE(at::equal(m, masks[i][0]))
            << kCaseNames[i] << ": " << (m != masks[i][0]).sum().item<int64_t>() << " pixels differ";
    }
    const at::Tensor all = vision::rasterize_prompts(ps, W, H, kS);
    EXPECT_TRUE(at::equal(all, masks.slice(0, 0, 4)));

    // and the encoder on the C++ masks reproduces the reference outputs
    const at::Tensor out = g.encoder(at::kFloat).forward(expand_images(g.image(), 4), all, g.features());
    for (int i = 0; i < 4; ++i) EXPECT_LT(rel_err(out[i], g.get("out_f32")[i]), 1e-4) << kCaseNames[i];
}

TEST(RegionEncoder, Bf16IsCloseToReference) {
    const Golden & g = golden();
    const RegionEncoder enc = g.encoder(at::kBFloat16);
    EXPECT_EQ(enc.dtype(), at::kBFloat16);
    const at::Tensor out = enc.forward(expand_images(g.image(), kCases), g.masks(), g.features());
    ASSERT_EQ(out.scalar_type(), at::kBFloat16);
    const at::Tensor want_bf16 = g.get("out_bf16"), want_f32 = g.get("out_f32");
    for (int64_t i = 0; i < kCases; ++i) {
        // the reference in bf16 rounds each sampled point before summing; here the mean is taken in fp32
        const double e16 = rel_err(out[i], want_bf16[i]), e32 = rel_err(out[i], want_f32[i]);
        EXPECT_LT(e16, 1.5e-2) << kCaseNames[i];  // measured <= 5e-3
        EXPECT_LT(e32, 1.5e-2) << kCaseNames[i];
    }
}

TEST(RegionEncoder, PointWeightsEqualGridSampleMean) {
    // the weighted-sum pooling against at::grid_sampler_2d on random maps and masks
    at::manual_seed(3);
    for (int64_t S : {28, 56, 84}) {
        const int64_t h = S / 14;
        const at::Tensor M = at::randn({1, 7, h, h});
        for (double density : {0.01, 0.2, 1.0}) {
            at::Tensor mask = at::rand({S, S}) < density;
            mask[0][0] = mask[S - 1][S - 1] = mask[0][S - 1] = mask[S - 1][0] = true;  // zeros padding on borders
            int64_t count = 0;
            const at::Tensor w = vision::region_point_weights(mask, h, h, 0, 0, 0, &count);
            const at::Tensor got = at::mv(M[0].reshape({7, h * h}), w) / double(count);

            const at::Tensor yx = mask.nonzero();  // [k, 2]
            ASSERT_EQ(yx.size(0), count);
            const at::Tensor p = at::stack({yx.select(1, 1) / S, yx.select(1, 0) / S}, -1).to(at::kFloat);
            const at::Tensor grid = (2.0 * p - 1.0).view({1, count, 1, 2});
            const at::Tensor s = at::grid_sampler_2d(M, grid, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners*/ false);
            const at::Tensor want = s[0].squeeze(-1).sum(1) / double(count);
            EXPECT_LT(rel_err(got, want), 1e-5) << "S " << S << " density " << density;
        }
    }
}

TEST(RegionEncoder, SeededSubsampleIsDeterministic) {
    const Golden & g = golden();
    const RegionEncoder enc = g.encoder(at::kFloat);
    const at::Tensor full = at::ones({1, 1, kS, kS});  // 3136 pixels
    const at::Tensor img = g.image();
    const auto f = g.features();
    const at::Tensor all = enc.forward(img, full, f);
    const at::Tensor a = enc.forward(img, full, f, 500, 7), b = enc.forward(img, full, f, 500, 7);
    EXPECT_TRUE(at::equal(a, b));
    EXPECT_FALSE(at::equal(a, enc.forward(img, full, f, 500, 8)));
    EXPECT_FALSE(at::equal(a, all));
    EXPECT_LT(rel_err(a, all), 0.1);  // a sample of the same region
    // max_points >= the pixel count keeps every pixel
    EXPECT_TRUE(at::equal(enc.forward(img, full, f, kS * kS, 7), all));
    EXPECT_TRUE(at::equal(enc.forward(img, full, f, 100000, 7), all));
    const at::Tensor masks = g.masks();
    EXPECT_TRUE(at::equal(enc.forward(expand_images(img, kCases), masks, f, 700, 1),
                          enc.forward(expand_images(img, kCases), masks, f)));
    // a region's draw does not depend on its position in the batch
    const at::Tensor two = at::cat({masks.slice(0, 0, 1), full}, 0);
    const at::Tensor batched = enc.forward(expand_images(img, 2), two, f, 500, 7);
    EXPECT_TRUE(at::allclose(batched[1], a[0], 1e-5, 1e-6));

    // the subsample itself: the requested size, and a subset of the mask
    int64_t count = 0;
    const at::Tensor w = vision::region_point_weights(full[0][0], 4, 4, 500, 7, 0, &count);
    EXPECT_EQ(count, 500);
    // the weights of 500 points: up to 1 each (border pixels lose some to the zero padding)
    EXPECT_LE(w.sum().item<double>(), 500 + 1e-3);
    EXPECT_GT(w.sum().item<double>(), 250);
    vision::region_point_weights(at::zeros({kS, kS}), 4, 4, 500, 7, 0, &count);
    EXPECT_EQ(count, 0);
}

TEST(RegionEncoder, ZeroRegions) {
    const Golden & g = golden();
    const at::Tensor out =
        g.encoder(at::kFloat).forward(at::zeros({0, 3, kS, kS}), at::zeros({0, 1, kS, kS}), g.features());
    EXPECT_EQ(out.sizes(), (std::vector<int64_t>{0, kOut}));
}

TEST(RegionEncoder, BadArgumentsNameTheArgument) {
    const Golden & g = golden();
    const RegionEncoder enc = g.encoder(at::kFloat);
    const at::Tensor img = g.image(), mask = g.masks().slice(0, 0, 1);
    const auto f = g.features();
    auto err = [&](const at::Tensor & i, const at::Tensor & m, const std::vector<at::Tensor> & ff, int64_t mp = 0) {
        return error_of([&] { enc.forward(i, m, ff, mp); });
    };
    EXPECT_NE(err(img[0], mask, f).find("images"), std::string::npos);
    EXPECT_NE(err(at::zeros({1, 4, kS, kS}), mask, f).find("images"), std::string::npos);
    EXPECT_NE(err(at::zeros({1, 3, kS, kS - 14}), mask, f).find("images"), std::string::npos);
    EXPECT_NE(err(img.to(at::kLong), mask, f).find("images"), std::string::npos);
    EXPECT_NE(err(at::zeros({1, 3, 50, 50}), at::zeros({1, 1, 50, 50}), f).find("multiple of the patch size"),
              std::string::npos);
    EXPECT_NE(err(img, mask[0], f).find("masks"), std::string::npos);
    EXPECT_NE(err(img, at::zeros({2, 1, kS, kS}), f).find("masks"), std::string::npos);
    EXPECT_NE(err(img, at::zeros({1, 1, kS, 42}), f).find("masks"), std::string::npos);
    EXPECT_NE(err(img, mask * 255, f).find("masks must hold only 0 and 1"), std::string::npos);
    EXPECT_NE(err(img, mask, {f[0], f[1]}).find("3 levels"), std::string::npos);
    EXPECT_NE(err(img, mask, {f[0], f[1], f[2], f[2]}).find("3 levels"), std::string::npos);
    EXPECT_NE(err(img, mask, {f[0], f[1], at::zeros({1, 9, kC})}).find("features[2]"), std::string::npos);
    EXPECT_NE(err(img, mask, {f[0], at::zeros({1, 16, kC + 1}), f[2]}).find("features[1]"), std::string::npos);
    EXPECT_NE(err(img, mask, {at::zeros({16, kC}), f[1], f[2]}).find("features[0]"), std::string::npos);
    EXPECT_NE(
        err(expand_images(img, 3), at::zeros({3, 1, kS, kS}), {at::zeros({2, 16, kC}), f[1], f[2]}).find("features[0]"),
        std::string::npos);
    EXPECT_NE(err(img, mask, {at::Tensor(), f[1], f[2]}).find("features[0]"), std::string::npos);
    EXPECT_NE(err(img, mask, {f[0], f[1], f[2].to(at::kInt)}).find("features[2]"), std::string::npos);
    EXPECT_NE(err(img, mask, f, -1).find("max_points"), std::string::npos);
    EXPECT_NE(err(at::Tensor(), mask, f).find("images"), std::string::npos);

    // weights: a wrong vis_hidden / llm_hidden is a shape error naming the key
    const std::string e = error_of([&] {
        RegionEncoder(g.weights.view("region_encoder."), kC + 1, kOut,
                      llm::Loader{c10::Device(c10::kCPU), at::kFloat, false});
    });
    EXPECT_NE(e.find("mask_embedding.6.weight"), std::string::npos) << e;
    const std::string e2 = error_of([&] {
        RegionEncoder(g.weights.view("nope."), kC, kOut, llm::Loader{c10::Device(c10::kCPU), at::kFloat, false});
    });
    EXPECT_NE(e2.find("nope.mask_embedding.0.weight"), std::string::npos) << e2;
}

TEST(RegionEncoder, ReleasedShapesBindTheLayoutAndRun) {
    // random weights with the released model's shapes (vis 1024, llm 4096), named by
    // vision/layout.cpp's region_encoder_expected_weights, at S = 336 (a 24x24 map, 576 patches)
    const int64_t vis = 1024, llm_h = 4096, S = 336;
    test::TempDir dir("region");
    at::manual_seed(5);
    std::vector<at::Tensor> keep;
    std::vector<io::TensorToWrite> tensors;
    for (const ExpectedTensor & e : vision::region_encoder_expected_weights(vis, llm_h)) {
        int64_t fan_in = 1;
        for (size_t d = 1; d < e.shape.size(); ++d) fan_in *= e.shape[d];
        keep.push_back(e.shape.size() == 1 ? 0.1 * at::randn(e.shape) : at::randn(e.shape) / std::sqrt(double(fan_in)));
        tensors.push_back(
            io::tensor_from_bytes("region_encoder." + e.name, DType::F32, e.shape, keep.back().data_ptr()));
    }
    io::write_safetensors(dir.file("w.safetensors"), tensors);
    const WeightMap map = WeightMap::open(dir.file("w.safetensors"));
    for (at::ScalarType dt : {at::kFloat, at::kBFloat16}) {
        const RegionEncoder enc(map.view("region_encoder."), vis, llm_h,
                                llm::Loader{c10::Device(c10::kCPU), dt, false});
        at::Tensor masks = at::zeros({3, 1, S, S});
        masks[0].fill_(1);                                          // the whole image: 112896 pixels
        masks[1][0].slice(0, 100, 200).slice(1, 30, 300).fill_(1);  // a box
        masks[2][0][335][0] = 1;                                    // one corner pixel
        const std::vector<at::Tensor> f = {at::randn({1, 576, vis}), at::randn({1, 576, vis}),
                                           at::randn({1, 576, vis})};
        const auto t0 = std::chrono::steady_clock::now();
        const at::Tensor out = enc.forward(at::randn({3, 3, S, S}), masks, f);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, llm_h}));
        EXPECT_EQ(out.scalar_type(), dt);
        EXPECT_TRUE(out.isfinite().all().item<bool>());
        EXPECT_LT(secs, 20.0) << "3 regions at S = 336 took " << secs << " s";
        // the official sampler's size: a deterministic 2304-point subsample of the full mask
        const at::Tensor sub = enc.forward(at::zeros({1, 3, S, S}), masks.slice(0, 0, 1), f, 2304, 1);
        EXPECT_TRUE(at::equal(sub, enc.forward(at::zeros({1, 3, S, S}), masks.slice(0, 0, 1), f, 2304, 1)));
    }
}
