// CLIP "anyres" preprocessing against the Python reference (tools/golden/preprocess.py: PIL 10.4 + transformers
// 4.34): PIL bicubic resize byte for byte, the grid choice and candidate order, CLIPImageProcessor alone, and the
// whole pipeline on real and synthetic image files; plus the config parser and the error paths.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>
#include <iostream>

#include "common/test_util.h"
#include "io/image.h"
#include "vision/preprocess.h"
#include "visionllm/checkpoint.h"

using namespace visionllm;
using namespace visionllm::test;
using json = nlohmann::json;

namespace {

std::string gdir() { return golden_dir("preprocess"); }
const json & manifest() {
    static const json j = json::parse(read_file(gdir() + "/preprocess.json"));
    return j;
}

// uint8 [h, w, c] -> Image
io::Image image_of(const at::Tensor & t) {
    EXPECT_EQ(t.scalar_type(), at::kByte);
    EXPECT_EQ(t.dim(), 3);
    io::Image img;
    img.height = t.size(0);
    img.width = t.size(1);
    img.channels = t.size(2);
    const at::Tensor c = t.contiguous();
    img.data.assign(c.data_ptr<uint8_t>(), c.data_ptr<uint8_t>() + c.numel());
    return img;
}

io::Image solid(int64_t w, int64_t h, int64_t ch, uint8_t v = 128) {
    io::Image img;
    img.width = w;
    img.height = h;
    img.channels = ch;
    img.data.assign(size_t(w * h * ch), v);
    return img;
}

// x[..., off::step, off::step] of an [n, 3, H, W] tensor
at::Tensor subsample(const at::Tensor & x, int64_t off, int64_t step) {
    return x.slice(2, off, x.size(2), step).slice(3, off, x.size(3), step);
}

std::string write_json(const TempDir & d, const std::string & name, const json & j) {
    write_file(d.file(name), j.dump());
    return d.file(name);
}

const vision::ImageProcessorConfig kDefault;

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// (a) PIL Image.resize(BICUBIC), every byte

TEST(Preprocess, ResizeBitExactWithPil) {
    WeightMap w = WeightMap::open(gdir() + "/resize.safetensors");
    int checked = 0;
    for (const auto & c : manifest()["resize"]) {
        const std::string name = c["name"];
        const io::Image in = image_of(w.get(name + ".in"));
        ASSERT_EQ(in.width, c["width"].get<int64_t>());
        ASSERT_EQ(in.channels, c["mode"] == "L" ? 1 : 3);
        for (const auto & s : c["sizes"]) {
            const int64_t ow = s[0], oh = s[1];
            const std::string key = name + ".out." + std::to_string(ow) + "x" + std::to_string(oh);
            const io::Image want = image_of(w.get(key));
            const io::Image got = vision::resize_bicubic(in, ow, oh);
            ASSERT_EQ(got.width, ow) << key;
            ASSERT_EQ(got.height, oh) << key;
            ASSERT_EQ(got.channels, in.channels) << key;
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < want.data.size(); ++i)
                if (got.data[i] != want.data[i] && bad++ == 0) first = i;
            EXPECT_EQ(bad, 0u) << key << ": " << bad << " of " << want.data.size() << " bytes differ, first at " << first
                               << " (got " << int(got.data[first]) << ", PIL " << int(want.data[first]) << ")";
            ++checked;
        }
    }
    EXPECT_GE(checked, 40);
}

TEST(Preprocess, ResizeSameSizeIsACopyAndSolidStaysSolid) {
    const io::Image a = solid(7, 5, 3, 200);
    EXPECT_EQ(vision::resize_bicubic(a, 7, 5).data, a.data);
    // weights sum to one: a constant image stays constant at every scale, in either direction
    for (auto [w, h] : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {3, 5}, {70, 2}, {13, 50}, {336, 336}}) {
        const io::Image r = vision::resize_bicubic(a, w, h);
        for (uint8_t v : r.data) ASSERT_EQ(v, 200) << w << "x" << h;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// (b) grids

TEST(Preprocess, CandidateOrderMatchesPythonSet) {
    const auto & cands = manifest()["candidates"];
    ASSERT_EQ(cands.size(), 24u);
    for (const auto & [k, list] : cands.items()) {
        const int64_t m = std::stoll(k);
        const auto got = vision::candidate_grids(m);
        ASSERT_EQ(got.size(), list.size()) << "max_tiles " << m;
        for (size_t i = 0; i < got.size(); ++i) {
            EXPECT_EQ(got[i].cols, list[i][0].get<int64_t>()) << "max_tiles " << m << " #" << i;
            EXPECT_EQ(got[i].rows, list[i][1].get<int64_t>()) << "max_tiles " << m << " #" << i;
        }
    }
    // the 7B configuration, spelled out
    std::vector<std::pair<int64_t, int64_t>> four;
    for (const auto & g : vision::candidate_grids(4)) four.push_back({g.cols, g.rows});
    EXPECT_EQ(four, (std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {1, 2}, {2, 1}, {3, 1}, {1, 3}, {4, 1}, {1, 4}, {2, 2}}));
}

TEST(Preprocess, GridChoiceMatchesReference) {
    const auto & rows = manifest()["grids"];
    ASSERT_GT(rows.size(), 1000u);
    int bad = 0;
    for (const auto & r : rows) {
        const int64_t w = r[0], h = r[1], s = r[2], m = r[3];
        const vision::Grid g = vision::choose_grid(w, h, s, m);
        if (g.cols != r[4].get<int64_t>() || g.rows != r[5].get<int64_t>()) {
            if (++bad <= 10)
                ADD_FAILURE() << w << "x" << h << " S=" << s << " max=" << m << ": got " << g.cols << "x" << g.rows
                              << ", reference " << r[4] << "x" << r[5];
        }
    }
    EXPECT_EQ(bad, 0);
}

TEST(Preprocess, GridTieRule) {
    // square: (1,1) and (2,2) tie; 2x2 only above 0.5 * 336^2 * 4 = 225792 pixels
    EXPECT_EQ(vision::choose_grid(475, 475, 336, 4).tiles(), 1);
    EXPECT_EQ(vision::choose_grid(476, 476, 336, 4).tiles(), 4);
    // 3:2 sits exactly between 1 and 2: (2,1) wins above 0.5 * 336^2 * 2 = 112896 pixels
    EXPECT_EQ(vision::choose_grid(300, 200, 336, 4).cols, 1);
    EXPECT_EQ(vision::choose_grid(600, 400, 336, 4).cols, 2);
    EXPECT_EQ(vision::choose_grid(1, 1000, 336, 4).rows, 4);
    EXPECT_EQ(vision::choose_grid(1000, 1, 336, 4).cols, 4);
    EXPECT_EQ(vision::choose_grid(1000, 1, 336, 1).tiles(), 1);
}

TEST(Preprocess, TilesAreCropsOfTheResizeThenTheThumbnail) {
    io::Image img = solid(90, 40, 3);
    for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = uint8_t((i * 37) % 251);
    vision::Grid g;
    const auto tiles = vision::dynamic_preprocess(img, 32, 4, &g);
    ASSERT_EQ(g.cols, 2);
    ASSERT_EQ(g.rows, 1);
    ASSERT_EQ(tiles.size(), 3u);
    const io::Image big = vision::resize_bicubic(img, 64, 32);
    for (int t = 0; t < 2; ++t)
        for (int64_t y = 0; y < 32; ++y)
            ASSERT_EQ(0, std::memcmp(tiles[size_t(t)].row(y), big.row(y) + t * 32 * 3, 32 * 3)) << "tile " << t << " row " << y;
    EXPECT_EQ(tiles[2].data, vision::resize_bicubic(img, 32, 32).data);
    // one tile: no thumbnail
    EXPECT_EQ(vision::dynamic_preprocess(solid(30, 30, 3), 32, 4, &g).size(), 1u);
    // gray in, RGB tiles out
    const auto gray = vision::dynamic_preprocess(solid(30, 30, 1, 77), 32, 4);
    ASSERT_EQ(gray[0].channels, 3);
    for (uint8_t v : gray[0].data) ASSERT_EQ(v, 77);
}

// ---------------------------------------------------------------------------------------------------------------
// CLIPImageProcessor alone

TEST(Preprocess, ClipProcessorMatchesTransformers) {
    WeightMap w = WeightMap::open(gdir() + "/resize.safetensors");
    const int64_t off = manifest()["subsample"]["offset"], step = manifest()["subsample"]["step"];
    int checked = 0;
    for (const auto & c : manifest()["clip"]) {
        const std::string key = c["key"];
        const vision::ImageProcessorConfig cfg = vision::parse_image_processor_config(c["config"].dump(), key);
        const io::Image in = image_of(w.get(c["input"].get<std::string>() + ".in"));
        const auto shape = c["shape"].get<std::vector<int64_t>>();
        if (shape[2] != shape[3]) {  // transformers' centre crop gives a ragged array here; we refuse
            const std::string e = error_of([&] { vision::clip_pixel_values({in}, cfg); });
            EXPECT_NE(e.find("ragged"), std::string::npos) << key << ": " << e;
            continue;
        }
        const at::Tensor got = vision::clip_pixel_values({in}, cfg);
        ASSERT_EQ(got.sizes().vec(), shape) << key;
        const at::Tensor want = w.get(key);
        const at::Tensor sub = subsample(got, off, step);
        ASSERT_EQ(sub.sizes(), want.sizes()) << key;
        EXPECT_TRUE(at::equal(sub, want)) << key << ": max |diff| " << (sub - want).abs().max().item<float>();
        ++checked;
    }
    EXPECT_GE(checked, 15);
}

// ---------------------------------------------------------------------------------------------------------------
// (c) the whole pipeline on image files

namespace {

// runs every manifest image from `source` ("shared" or "golden"), counting them in `ran`
void run_pipeline_cases(const std::string & source, const std::string & root, int & ran) {
    WeightMap w = WeightMap::open(gdir() + "/pipeline.safetensors");
    const json & m = manifest();
    const int64_t off = m["subsample"]["offset"], step = m["subsample"]["step"], max_tiles = m["max_tiles"];
    for (const auto & e : m["images"]) {
        if (e["source"] != source) continue;
        const std::string name = e["name"], rel = e["path"];
        SCOPED_TRACE(rel);
        const bool lossy = e["lossy"];  // JPEG / lossy WebP: OpenCV's decoder and PIL's may differ slightly
        // PIL's Image.open does not apply EXIF orientation
        const io::Image img = io::read_image(root + "/" + rel, /*apply_exif=*/false);
        EXPECT_EQ(img.width, e["width"].get<int64_t>());
        EXPECT_EQ(img.height, e["height"].get<int64_t>());
        const vision::PreprocessedImage p = vision::preprocess_anyres(img, kDefault, max_tiles);
        EXPECT_EQ(p.grid.cols, e["cols"].get<int64_t>());
        EXPECT_EQ(p.grid.rows, e["rows"].get<int64_t>());
        EXPECT_EQ(p.width, img.width);
        EXPECT_EQ(p.height, img.height);
        const int64_t n = e["n_tiles"];
        ASSERT_EQ(p.pixel_values.sizes().vec(), (std::vector<int64_t>{n, 3, 336, 336}));
        ASSERT_EQ(p.pixel_values.scalar_type(), at::kFloat);
        const at::Tensor want = w.get(name + ".pixel_values");
        const at::Tensor sub = subsample(p.pixel_values, off, step);
        ASSERT_EQ(sub.sizes(), want.sizes());
        // back to the [0, 1] scale: the difference times std
        const at::Tensor sd = at::tensor(std::vector<float>(kDefault.std.begin(), kDefault.std.end())).view({1, 3, 1, 1});
        const float err = ((sub - want).abs() * sd).max().item<float>();
        EXPECT_LE(err, 1.0f / 255 + 1e-6f) << "max |diff| in [0,1] units: " << err * 255 << "/255";
        if (lossy && err > 0) std::cout << "  " << rel << ": the decoders differ, max " << err * 255 << "/255\n";
        if (!lossy) EXPECT_EQ(err, 0.0f) << "lossless input: expected bit-exact pixels, max diff " << err * 255 << "/255";
        // the global image (uint8)
        const at::Tensor gwant = w.get(name + ".global");
        ASSERT_EQ(p.global.width, 336);
        ASSERT_EQ(p.global.height, 336);
        int64_t gbad = 0;
        for (int64_t y = off, yi = 0; y < 336; y += step, ++yi)
            for (int64_t x = off, xi = 0; x < 336; x += step, ++xi)
                for (int64_t c = 0; c < 3; ++c) {
                    const int d = int(p.global.row(y)[x * 3 + c]) - int(gwant[yi][xi][c].item<uint8_t>());
                    gbad += lossy ? std::abs(d) > 1 : d != 0;
                }
        EXPECT_EQ(gbad, 0) << "global image samples off";
        ++ran;
    }
}

}  // namespace

TEST(Preprocess, PipelineOnSyntheticFiles) {
    int n = 0;
    run_pipeline_cases("golden", gdir(), n);
    EXPECT_GE(n, 12);
}

TEST(Preprocess, PipelineOnSharedImages) {
    if (shared_dir().empty()) GTEST_SKIP() << "../shared is absent: the real-image pipeline goldens are skipped";
    int n = 0;
    run_pipeline_cases("shared", shared_dir(), n);
    EXPECT_GE(n, 12);
}

TEST(Preprocess, AnyresShapesAndGlobal) {
    io::Image img = solid(1200, 300, 3);
    const auto p = vision::preprocess_anyres(img, kDefault);
    EXPECT_EQ(p.grid.cols, 4);
    EXPECT_EQ(p.grid.rows, 1);
    EXPECT_EQ(p.pixel_values.sizes().vec(), (std::vector<int64_t>{5, 3, 336, 336}));
    EXPECT_EQ(p.global.width, 336);
    // 128 -> (128/255 - mean) / std in every pixel
    const float want = (float(128 * (1.0 / 255)) - kDefault.mean[1]) / kDefault.std[1];
    EXPECT_FLOAT_EQ(p.pixel_values[4][1][100][200].item<float>(), want);
    // a different tile size through crop_size
    vision::ImageProcessorConfig c224;
    c224.size = c224.crop_size = 224;
    EXPECT_EQ(vision::preprocess_anyres(img, c224, 6).pixel_values.sizes().vec(), (std::vector<int64_t>{5, 3, 224, 224}));
}

// ---------------------------------------------------------------------------------------------------------------
// preprocessor_config.json

TEST(Preprocess, ConfigParsesOpenAiClipFiles) {
    TempDir d("pre_cfg");
    // the old-style file of openai/clip-vit-large-patch14-336
    const json old_style = {{"crop_size", 336},
                            {"do_center_crop", true},
                            {"do_normalize", true},
                            {"do_resize", true},
                            {"feature_extractor_type", "CLIPFeatureExtractor"},
                            {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
                            {"image_std", {0.26862954, 0.26130258, 0.27577711}},
                            {"resample", 3},
                            {"size", 336}};
    auto c = vision::load_image_processor_config(write_json(d, "old.json", old_style));
    EXPECT_EQ(c.size, 336);
    EXPECT_EQ(c.crop_size, 336);
    EXPECT_EQ(c.mean, kDefault.mean);
    EXPECT_EQ(c.std, kDefault.std);
    EXPECT_DOUBLE_EQ(c.rescale_factor, 1.0 / 255);
    EXPECT_TRUE(c.do_resize && c.do_center_crop && c.do_rescale && c.do_normalize);
    // the new-style one transformers 4.34 writes
    const json new_style = {{"crop_size", {{"height", 224}, {"width", 224}}},
                            {"size", {{"shortest_edge", 256}}},
                            {"do_rescale", false},
                            {"rescale_factor", 0.5},
                            {"image_mean", 0.5},
                            {"image_processor_type", "CLIPImageProcessor"},
                            {"some_future_field", {1, 2, 3}}};
    c = vision::load_image_processor_config(write_json(d, "new.json", new_style));
    EXPECT_EQ(c.size, 256);
    EXPECT_EQ(c.crop_size, 224);
    EXPECT_FALSE(c.do_rescale);
    EXPECT_DOUBLE_EQ(c.rescale_factor, 0.5);
    EXPECT_EQ(c.mean, (std::array<float, 3>{0.5f, 0.5f, 0.5f}));
    // empty object: the defaults
    c = vision::load_image_processor_config(write_json(d, "empty.json", json::object()));
    EXPECT_EQ(c.size, 336);
}

TEST(Preprocess, ConfigErrorsNameFieldAndFile) {
    TempDir d("pre_cfg_bad");
    const std::vector<std::pair<json, std::string>> bad = {
        {{{"size", "336"}}, "size"},
        {{{"size", {{"height", 336}, {"width", 336}}}}, "shortest_edge"},
        {{{"size", 0}}, "size"},
        {{{"crop_size", {{"height", 336}, {"width", 224}}}}, "square"},
        {{{"crop_size", {{"height", 336}}}}, "crop_size"},
        {{{"image_mean", {0.5, 0.5}}}, "image_mean"},
        {{{"image_std", {0.5, "x", 0.5}}}, "image_std"},
        {{{"image_std", {0.5, 0.0, 0.5}}}, "image_std"},
        {{{"rescale_factor", "1/255"}}, "rescale_factor"},
        {{{"do_resize", 1}}, "do_resize"},
        {{{"do_normalize", "yes"}}, "do_normalize"},
        {{{"resample", 2}}, "resample"},
    };
    for (size_t i = 0; i < bad.size(); ++i) {
        const std::string path = write_json(d, "bad" + std::to_string(i) + ".json", bad[i].first);
        const std::string e = error_of([&] { vision::load_image_processor_config(path); });
        EXPECT_NE(e.find(path), std::string::npos) << bad[i].first.dump() << " -> " << e;
        EXPECT_NE(e.find(bad[i].second), std::string::npos) << bad[i].first.dump() << " -> " << e;
    }
    write_file(d.file("broken.json"), "{\"size\": ");
    std::string e = error_of([&] { vision::load_image_processor_config(d.file("broken.json")); });
    EXPECT_NE(e.find("broken.json"), std::string::npos) << e;
    write_file(d.file("list.json"), "[1, 2]");
    e = error_of([&] { vision::load_image_processor_config(d.file("list.json")); });
    EXPECT_NE(e.find("list.json"), std::string::npos) << e;
    e = error_of([&] { vision::load_image_processor_config(d.file("missing.json")); });
    EXPECT_NE(e.find("missing.json"), std::string::npos) << e;
}

// ---------------------------------------------------------------------------------------------------------------
// bad arguments are errors, not crashes

TEST(Preprocess, ArgumentErrors) {
    const io::Image ok = solid(10, 10, 3);
    EXPECT_NE(error_of([&] { vision::resize_bicubic(ok, 0, 5); }), "");
    EXPECT_NE(error_of([&] { vision::resize_bicubic(ok, 5, -1); }), "");
    EXPECT_NE(error_of([&] { vision::resize_bicubic(ok, 100000, 5); }), "");
    EXPECT_NE(error_of([&] { vision::resize_bicubic(io::Image{}, 5, 5); }).find("empty"), std::string::npos);
    io::Image two = solid(4, 4, 2);
    EXPECT_NE(error_of([&] { vision::resize_bicubic(two, 5, 5); }).find("channel"), std::string::npos);
    io::Image short_data = solid(4, 4, 3);
    short_data.data.resize(10);
    EXPECT_NE(error_of([&] { vision::resize_bicubic(short_data, 5, 5); }).find("bytes"), std::string::npos);
    EXPECT_NE(error_of([&] { vision::choose_grid(0, 10, 336, 4); }), "");
    EXPECT_NE(error_of([&] { vision::choose_grid(10, 10, 0, 4); }), "");
    EXPECT_NE(error_of([&] { vision::candidate_grids(0); }).find("max_tiles"), std::string::npos);
    EXPECT_NE(error_of([&] { vision::candidate_grids(vision::kMaxTiles + 1); }).find("max_tiles"), std::string::npos);
    EXPECT_NE(error_of([&] { vision::dynamic_preprocess(ok, 0, 4); }).find("image_size"), std::string::npos);
    EXPECT_NE(error_of([&] { vision::dynamic_preprocess(ok, 336, 0); }).find("max_tiles"), std::string::npos);
    EXPECT_NE(error_of([&] { vision::clip_pixel_values({}, kDefault); }).find("no tiles"), std::string::npos);
    vision::ImageProcessorConfig no_crop;
    no_crop.do_center_crop = false;
    // shortest edge 336 of a 40x20 tile is 672x336: without the crop it is not square
    EXPECT_NE(error_of([&] { vision::clip_pixel_values({solid(40, 20, 3)}, no_crop); }).find("do_center_crop"),
              std::string::npos);
}
