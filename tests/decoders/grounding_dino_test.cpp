// VisionLLM v2's Grounding DINO (OVGroundingDinoForObjectDetection, inference) against the golden of
// tools/golden/gdino.py (tests/data/golden/gdino: transformers 4.40.2 GroundingDino patched to OV's forward_test, a
// tiny random model in the VisionLLM key layout, a 90x130 photo padded to 96x160): logits, boxes and masks of every
// decoder layer within 1e-4 relative (max abs diff / max abs reference over the finite entries; the -inf entries
// where the reference has them), for 3 groups, 1 group and 4 slots with one padded, from the golden's backbone maps
// and end to end from the pixels; a batch of two; the intermediates; bf16 within a loose tolerance; bad inputs.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "common/test_util.h"
#include "decoders/gdino/grounding_dino.h"
#include "llm/llama.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"
#include "visionllm/device.h"

using namespace visionllm;

namespace {

std::string dir() { return test::golden_dir("gdino"); }

GroundingDinoConfig config() {
    return parse_gdino_config(test::read_file(dir() + "/config.json"), "gdino/config.json");
}

llm::Loader loader(at::ScalarType dt, c10::Device dev = c10::Device(c10::kCPU)) { return llm::Loader{dev, dt, false}; }

// max |got - want| / max |want| over the entries where want is finite; the non-finite entries must be equal
double rel_err(const at::Tensor & got_in, const at::Tensor & want_in, const std::string & what) {
    at::Tensor got = got_in.to(at::kCPU).to(at::kDouble), want = want_in.to(at::kCPU).to(at::kDouble);
    EXPECT_EQ(got.sizes(), want.sizes()) << what;
    if (got.sizes() != want.sizes()) return 1e30;
    at::Tensor fin = at::isfinite(want);
    EXPECT_TRUE(at::equal(fin, at::isfinite(got))) << what << ": finite entries differ";
    EXPECT_TRUE(at::equal(got.masked_select(fin.logical_not()), want.masked_select(fin.logical_not())))
        << what << ": non-finite entries differ";
    if (!fin.any().item<bool>()) return 0;
    const double diff = (got - want).masked_select(fin).abs().max().item<double>();
    return diff / std::max(want.masked_select(fin).abs().max().item<double>(), 1e-30);
}

struct Golden {
    GroundingDinoConfig cfg = config();
    WeightMap weights = WeightMap::open(dir() + "/checkpoint");
    WeightMap image = WeightMap::open(dir() + "/image.safetensors");

    std::vector<at::Tensor> maps() const {
        std::vector<at::Tensor> m;
        for (int i = 1; i <= 4; ++i) m.push_back(image.get("backbone.stage" + std::to_string(i)));
        return m;
    }
};

WeightMap open_case(const std::string & name) { return WeightMap::open(dir() + "/case_" + name + ".safetensors"); }

gdino::ForwardOptions everything() {
    gdino::ForwardOptions o;
    o.all_layers = true;
    o.masks = true;
    o.intermediates = true;
    return o;
}

// every layer's logits, boxes and masks against the case's golden
void expect_outputs(const gdino::GroundingDinoOutput & out, const WeightMap & want, const GroundingDinoConfig & c,
                    double tol, int64_t batch_index = -1) {
    ASSERT_EQ(int64_t(out.logits.size()), c.decoder_layers);
    ASSERT_EQ(out.boxes.size(), out.logits.size());
    ASSERT_EQ(out.masks.size(), out.logits.size());
    for (int64_t l = 0; l < c.decoder_layers; ++l) {
        EXPECT_EQ(out.layers[size_t(l)], l);
        const std::string s = std::to_string(l);
        auto pick = [&](const at::Tensor & t) { return batch_index < 0 ? t : t.narrow(0, batch_index, 1); };
        for (const auto & [name, got] : {std::pair<std::string, at::Tensor>{"logits." + s, out.logits[size_t(l)]},
                                         {"boxes." + s, out.boxes[size_t(l)]},
                                         {"masks." + s, out.masks[size_t(l)]}}) {
            EXPECT_EQ(got.scalar_type(), at::kFloat) << name;
            const double e = rel_err(pick(got), want.get(name), name);
            EXPECT_LT(e, tol) << name;
            ::testing::Test::RecordProperty(name, std::to_string(e));
        }
    }
}

class GdinoGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(GdinoGolden, EveryLayerMatchesTheReferenceFromBackboneMaps) {
    Golden g;
    gdino::OVGroundingDinoForObjectDetection model(g.cfg, g.weights.view("gdino."), loader(at::kFloat));
    WeightMap want = open_case(GetParam());
    auto out = model.forward_features(g.maps(), g.image.get("pixel_mask"), want.get("text_query"),
                                      want.get("text_query_mask"), everything());
    expect_outputs(out, want, g.cfg, 1e-4);
    EXPECT_EQ(out.num_text, want.get("text_query_mask").sum().item<int64_t>());
    // the intermediates: the selection exactly, the rest within the same tolerance
    EXPECT_TRUE(at::equal(out.intermediates.at("topk_index").to(at::kCPU), want.get("topk_index")));
    for (std::string name : {"text_features", "valid_ratios", "enc_vision", "enc_text", "mask_features", "enc_class_max",
                             "init_reference"})
        EXPECT_LT(rel_err(out.intermediates.at(name), want.get(name), name), 1e-4) << name;
    for (int64_t l = 0; l < g.cfg.decoder_layers; ++l)
        for (std::string name : {"dec_hidden.", "dec_reference."}) {
            name += std::to_string(l);
            EXPECT_LT(rel_err(out.intermediates.at(name), want.get(name), name), 1e-4) << name;
        }
}

TEST_P(GdinoGolden, EndToEndFromPixels) {
    Golden g;
    gdino::OVGroundingDinoForObjectDetection model(g.cfg, g.weights.view("gdino."), loader(at::kFloat));
    WeightMap want = open_case(GetParam());
    auto out = model.forward(g.image.get("pixel_values"), g.image.get("pixel_mask"), want.get("text_query"),
                             want.get("text_query_mask"), everything());
    expect_outputs(out, want, g.cfg, 1e-4);
    for (int i = 1; i <= 4; ++i) {
        const std::string name = "backbone.stage" + std::to_string(i);
        EXPECT_LT(rel_err(out.intermediates.at(name), g.image.get(name), name), 1e-4) << name;
    }
}

INSTANTIATE_TEST_SUITE_P(Cases, GdinoGolden, ::testing::Values("t3", "t1", "t4pad"));

TEST(Gdino, LastLayerByDefault) {
    Golden g;
    gdino::OVGroundingDinoForObjectDetection model(g.cfg, g.weights.view("gdino."), loader(at::kFloat));
    WeightMap want = open_case("t1");
    auto out = model.forward_features(g.maps(), g.image.get("pixel_mask"), want.get("text_query"),
                                      want.get("text_query_mask"));
    ASSERT_EQ(out.logits.size(), 1u);
    ASSERT_EQ(out.boxes.size(), 1u);
    EXPECT_TRUE(out.masks.empty());
    EXPECT_TRUE(out.intermediates.empty());
    const std::string last = std::to_string(g.cfg.decoder_layers - 1);
    EXPECT_EQ(out.layers, std::vector<int64_t>{g.cfg.decoder_layers - 1});
    EXPECT_EQ(out.logits[0].sizes(), (std::vector<int64_t>{1, g.cfg.num_queries, g.cfg.max_text_len}));
    EXPECT_LT(rel_err(out.logits[0], want.get("logits." + last), "logits"), 1e-4);
    EXPECT_LT(rel_err(out.boxes[0], want.get("boxes." + last), "boxes"), 1e-4);
}

TEST(Gdino, BatchOfTwoWithDifferentTexts) {
    // item 0: t3's three groups plus one padded slot; item 1: t4pad (four slots, the last padded)
    Golden g;
    gdino::OVGroundingDinoForObjectDetection model(g.cfg, g.weights.view("gdino."), loader(at::kFloat));
    WeightMap a = open_case("t3"), b = open_case("t4pad");
    at::Tensor ta = a.get("text_query"), tb = b.get("text_query");
    at::Tensor tq = at::cat({at::cat({ta, at::randn_like(ta.narrow(1, 0, 1))}, 1), tb}, 0);
    at::Tensor mask = at::cat({at::cat({a.get("text_query_mask"), at::zeros({1, 1}, at::kBool)}, 1),
                               b.get("text_query_mask")}, 0);
    std::vector<at::Tensor> maps;
    for (const at::Tensor & m : g.maps()) maps.push_back(at::cat({m, m}, 0));
    at::Tensor pm = g.image.get("pixel_mask");
    auto out = model.forward_features(maps, at::cat({pm, pm}, 0), tq, mask, everything());
    EXPECT_EQ(out.num_text, 3);
    for (int64_t l = 0; l < g.cfg.decoder_layers; ++l) {
        const std::string s = std::to_string(l);
        // item 0 has one more -inf column than t3's golden had (its padded slot): compare the first three
        at::Tensor la = out.logits[size_t(l)].narrow(0, 0, 1), wa = a.get("logits." + s);
        EXPECT_TRUE(at::isinf(la.select(-1, 3)).all().item<bool>());
        EXPECT_LT(rel_err(la.narrow(-1, 0, 3), wa.narrow(-1, 0, 3), "item 0 logits." + s), 1e-4);
        EXPECT_LT(rel_err(out.boxes[size_t(l)].narrow(0, 0, 1), a.get("boxes." + s), "item 0 boxes." + s), 1e-4);
        EXPECT_LT(rel_err(out.masks[size_t(l)].narrow(0, 0, 1), a.get("masks." + s), "item 0 masks." + s), 1e-4);
    }
    expect_outputs(out, b, g.cfg, 1e-4, 1);
}

TEST(Gdino, Bf16RunsCloseToTheReference) {
    Golden g;
    gdino::OVGroundingDinoForObjectDetection model(g.cfg, g.weights.view("gdino."), loader(at::kBFloat16));
    EXPECT_EQ(model.dtype(), at::kBFloat16);
    WeightMap want = open_case("t3");
    gdino::ForwardOptions o = everything();
    // the golden's two-stage selection: bf16 rounding would reorder the near-tied encoder scores
    o.selection = want.get("topk_index");
    auto out = model.forward(g.image.get("pixel_values"), g.image.get("pixel_mask"), want.get("text_query"),
                             want.get("text_query_mask"), o);
    const int64_t last = g.cfg.decoder_layers - 1;
    for (int64_t l = 0; l <= last; ++l) {
        const std::string s = std::to_string(l);
        EXPECT_EQ(out.logits[size_t(l)].scalar_type(), at::kFloat);
        const double el = rel_err(out.logits[size_t(l)], want.get("logits." + s), "bf16 logits." + s);
        const double eb = rel_err(out.boxes[size_t(l)], want.get("boxes." + s), "bf16 boxes." + s);
        const double em = rel_err(out.masks[size_t(l)], want.get("masks." + s), "bf16 masks." + s);
        EXPECT_LT(el, 0.1) << s;
        EXPECT_LT(eb, 0.1) << s;
        EXPECT_LT(em, 0.1) << s;
        RecordProperty("bf16_logits." + s, std::to_string(el));
        RecordProperty("bf16_boxes." + s, std::to_string(eb));
        RecordProperty("bf16_masks." + s, std::to_string(em));
    }
    // scores before the selection
    EXPECT_LT(rel_err(out.intermediates.at("enc_class_max"), want.get("enc_class_max"), "bf16 enc_class_max"), 0.1);
}

TEST(Gdino, BadInputsNameTheArgument) {
    Golden g;
    gdino::OVGroundingDinoForObjectDetection model(g.cfg, g.weights.view("gdino."), loader(at::kFloat));
    WeightMap want = open_case("t3");
    const at::Tensor px = g.image.get("pixel_values"), pm = g.image.get("pixel_mask");
    const at::Tensor tq = want.get("text_query"), tm = want.get("text_query_mask");
    const int64_t T = tq.size(1), E = tq.size(2), Lh = tq.size(3);
    auto err = [&](const at::Tensor & pv, const at::Tensor & pmask, const at::Tensor & q, const at::Tensor & qm) {
        return test::error_of([&] { model.forward(pv, pmask, q, qm); });
    };
    // text_query with the wrong hidden size
    std::string e = err(px, pm, at::randn({1, T, E, Lh + 1}), tm);
    EXPECT_NE(e.find("text_query"), std::string::npos) << e;
    EXPECT_NE(e.find("l_hidden_size"), std::string::npos) << e;
    // T == 0
    e = err(px, pm, at::randn({1, 0, E, Lh}), at::zeros({1, 0}, at::kBool));
    EXPECT_NE(e.find("text_query"), std::string::npos) << e;
    EXPECT_NE(e.find("T = 0"), std::string::npos) << e;
    // T > max_text_len
    const int64_t big = g.cfg.max_text_len + 1;
    e = err(px, pm, at::randn({1, big, E, Lh}), at::ones({1, big}, at::kBool));
    EXPECT_NE(e.find("max_text_len"), std::string::npos) << e;
    EXPECT_NE(e.find("text_query"), std::string::npos) << e;
    // pixel_mask of another size than pixel_values
    e = err(px, pm.narrow(2, 0, pm.size(2) - 32), tq, tm);
    EXPECT_NE(e.find("pixel_mask"), std::string::npos) << e;
    // text_query_mask of another length, or with no valid group
    e = err(px, pm, tq, tm.narrow(1, 0, T - 1));
    EXPECT_NE(e.find("text_query_mask"), std::string::npos) << e;
    e = err(px, pm, tq, at::zeros_like(tm));
    EXPECT_NE(e.find("text_query_mask"), std::string::npos) << e;
    // the backbone maps of forward_features
    e = test::error_of([&] { model.forward_features({}, pm, tq, tm); });
    EXPECT_NE(e.find("backbone maps"), std::string::npos) << e;
    // and a valid call still works afterwards
    EXPECT_EQ(test::error_of([&] { model.forward(px, pm, tq, tm); }), "");
}

TEST(Gdino, CudaMatchesTheReference) {
    if (!cuda_usable()) GTEST_SKIP() << "no CUDA device";
    Golden g;
    const c10::Device dev(c10::kCUDA, 0);
    gdino::OVGroundingDinoForObjectDetection model(g.cfg, g.weights.view("gdino."), loader(at::kFloat, dev));
    for (std::string name : {"t3", "t4pad"}) {
        WeightMap want = open_case(name);
        auto out = model.forward(g.image.get("pixel_values"), g.image.get("pixel_mask"), want.get("text_query"),
                                 want.get("text_query_mask"), everything());
        EXPECT_TRUE(at::equal(out.intermediates.at("topk_index").to(at::kCPU), want.get("topk_index"))) << name;
        expect_outputs(out, want, g.cfg, 1e-3);
    }
}

}  // namespace
