// The super link (visionllmv2.md §5): routing/query ids from the tokenizer files, the evaluation's
// templates, teacher-forced overwriting and insertion of the learned queries, the generation hook that
// inserts them in the step of the routing token (its captured hidden states must equal the teacher-forced
// single pass over the same sequence, §5.2), and the answer parser.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "common/test_util.h"
#include "llm/generate.h"
#include "llm/llama.h"
#include "superlink/routing.h"
#include "text/tokenizer.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"
#include "visionllm/make_tiny.h"

using namespace visionllm;
using superlink::Route;

namespace {

class SuperLink : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new test::TempDir("superlink");
        MakeTinyOptions o;
        o.out_dir = dir_->path();
        o.components = {"llm", "vision"};
        o.dtype = DType::F32;
        o.shards = 1;
        o.progress = false;
        make_tiny(o);
        tok_ = new text::Tokenizer(text::Tokenizer::load(dir_->path()));
        cfg_ = new ModelConfig(load_model_config(dir_->path()));
        map_ = new WeightMap(WeightMap::open(dir_->path()));
        llm::LlamaOptions lo;
        lo.dtype = at::kFloat;
        llm_ = llm::LlamaForCausalLM::from_pretrained(*cfg_, *map_, lo).release();
        rt_ = new superlink::RoutingTokens(superlink::RoutingTokens::resolve(*tok_, 4, 64, "tiny"));
        q_ = new superlink::QueryTables(superlink::QueryTables::load(map_->view(""), cfg_->vllm.llm.hidden_size, 4, 64,
                                                                     c10::kCPU, at::kFloat));
    }
    static void TearDownTestSuite() {
        delete q_;
        delete rt_;
        delete llm_;
        delete map_;
        delete cfg_;
        delete tok_;
        delete dir_;
    }
    static test::TempDir * dir_;
    static text::Tokenizer * tok_;
    static ModelConfig * cfg_;
    static WeightMap * map_;
    static llm::LlamaForCausalLM * llm_;
    static superlink::RoutingTokens * rt_;
    static superlink::QueryTables * q_;
};
test::TempDir * SuperLink::dir_ = nullptr;
text::Tokenizer * SuperLink::tok_ = nullptr;
ModelConfig * SuperLink::cfg_ = nullptr;
WeightMap * SuperLink::map_ = nullptr;
llm::LlamaForCausalLM * SuperLink::llm_ = nullptr;
superlink::RoutingTokens * SuperLink::rt_ = nullptr;
superlink::QueryTables * SuperLink::q_ = nullptr;

TEST_F(SuperLink, TokensComeFromTheTokenizerFiles) {
    EXPECT_EQ(rt_->det, tok_->token_to_id("[DET]"));
    EXPECT_EQ(rt_->grd, tok_->token_to_id("[GRD]"));
    EXPECT_EQ(rt_->seg, tok_->token_to_id("[SEG]"));
    EXPECT_EQ(rt_->pose, tok_->token_to_id("[POSE]"));
    EXPECT_EQ(rt_->gen, tok_->token_to_id("[GEN]"));
    EXPECT_EQ(rt_->edit, tok_->token_to_id("[EDIT]"));
    ASSERT_EQ(rt_->perception.size(), 4u);
    for (int64_t i = 0; i < 4; ++i) EXPECT_EQ(rt_->perception[size_t(i)], rt_->emb + i);
    EXPECT_EQ(rt_->route_of(rt_->det), Route::Det);
    EXPECT_FALSE(rt_->route_of(rt_->emb).has_value());
    EXPECT_EQ(rt_->query_ids(Route::Gen), std::vector<int64_t>(64, rt_->emb));
    EXPECT_EQ(rt_->num_queries(Route::Pose), 4);
    // num_embs beyond the tokenizer's [EMB8]
    EXPECT_NE(test::error_of([] { superlink::RoutingTokens::resolve(*tok_, 9, 64, "tiny"); }).find("[EMB9]"),
              std::string::npos);
    ASSERT_TRUE(q_->det.defined() && q_->gen.defined());
    EXPECT_EQ(q_->gen.sizes(), (std::vector<int64_t>{64, cfg_->vllm.llm.hidden_size}));
}

TEST_F(SuperLink, EvaluationTemplates) {
    const auto d = superlink::detection_prompt({"person", "traffic light"}, 4);
    EXPECT_EQ(d.question, "Can you analyze the image and identify the person, traffic light present?");
    EXPECT_EQ(d.answer, "Yes, here are the results for person[DET][EMB][EMB2][EMB3][EMB4], "
                        "traffic light[DET][EMB][EMB2][EMB3][EMB4] in the image.");
    const auto s = superlink::segmentation_prompt({"Wall", "Sky"}, 4);
    EXPECT_EQ(s.question, "Could you aid me in generating unique masks for every category present in wall, sky in "
                          "this image?");
    EXPECT_EQ(s.answer, "Yes, here are the results for Wall[SEG][EMB][EMB2][EMB3][EMB4], "
                        "Sky[SEG][EMB][EMB2][EMB3][EMB4] in the image.");
    const auto g = superlink::grounding_prompt("man in a red shirt", 4);
    EXPECT_EQ(g.question, "Where can we locate the man in a red shirt in the image?");
    EXPECT_EQ(g.answer, "Yes, it is [GRD][EMB][EMB2][EMB3][EMB4].");
    EXPECT_EQ(superlink::detection_prompt({"cat"}, 1).answer, "Yes, here are the results for cat[DET][EMB] in the image.");
    EXPECT_NE(test::error_of([] { superlink::detection_prompt({}, 4); }).find("no classes"), std::string::npos);
    EXPECT_NE(test::error_of([] { superlink::detection_prompt({"cat", " "}, 4); }).find("class 2 is empty"),
              std::string::npos);
    EXPECT_NE(test::error_of([] { superlink::detection_prompt({"a[DET]"}, 4); }).find("class 1"), std::string::npos);
}

TEST_F(SuperLink, TeacherForcedQueriesAreOverwritten) {
    const auto tp = superlink::detection_prompt({"cat", "dog"}, 4);
    std::vector<int64_t> ids = tok_->encode(tp.answer);
    at::Tensor e = llm_->embed(at::tensor(ids, at::kLong).view({1, -1}));
    const at::Tensor before = e.clone();
    const auto groups = superlink::overwrite_queries(e, ids, *rt_, *q_);
    ASSERT_EQ(groups.size(), 2u);
    for (const auto & g : groups) {
        EXPECT_EQ(ids[size_t(g.token_pos)], rt_->det);
        ASSERT_EQ(g.query_pos.size(), 4u);
        EXPECT_TRUE(at::equal(e[0].narrow(0, g.query_pos[0], 4), q_->det));
        EXPECT_FALSE(at::equal(before[0].narrow(0, g.query_pos[0], 4), q_->det));  // not the [EMB] token rows
    }
    // every other row untouched
    at::Tensor keep = at::ones({int64_t(ids.size())}, at::kBool);
    for (const auto & g : groups) keep.narrow(0, g.query_pos[0], 4).fill_(false);
    EXPECT_TRUE(at::equal(e[0].index({keep}), before[0].index({keep})));
}

TEST_F(SuperLink, InsertionAddsQueriesAfterEachRoutingToken) {
    // a generated-style answer: routing tokens without their queries; and one already teacher-forced
    std::vector<int64_t> ids = tok_->encode("Yes, cat[DET], dog[DET] and a picture[GEN].");
    const size_t n0 = ids.size();
    at::Tensor e = llm_->embed(at::tensor(ids, at::kLong).view({1, -1}));
    superlink::Expanded ex = superlink::insert_queries(e, ids, *rt_, *q_);
    ASSERT_EQ(ex.groups.size(), 3u);
    EXPECT_EQ(ex.ids.size(), n0 + 4 + 4 + 64);
    EXPECT_EQ(ex.embeds.size(1), int64_t(ex.ids.size()));
    EXPECT_EQ(ex.groups[2].route, Route::Gen);
    EXPECT_TRUE(at::equal(ex.embeds[0].narrow(0, ex.groups[0].query_pos[0], 4), q_->det));
    EXPECT_TRUE(at::equal(ex.embeds[0].narrow(0, ex.groups[2].query_pos[0], 64), q_->gen));
    // the text rows keep their order and values
    std::vector<int64_t> text;
    for (int64_t id : ex.ids)
        if (!rt_->is_query_id(id)) text.push_back(id);
    EXPECT_EQ(text, ids);
    // already in place: nothing inserted, rows overwritten
    superlink::Expanded again = superlink::insert_queries(ex.embeds, ex.ids, *rt_, *q_);
    EXPECT_EQ(again.ids, ex.ids);
    EXPECT_TRUE(at::equal(again.embeds, ex.embeds));
    // the reference's query tables are required when a routing token is used
    superlink::QueryTables none;
    EXPECT_NE(test::error_of([&] { superlink::insert_queries(e, ids, *rt_, none); }).find("emb_embeddings_det"),
              std::string::npos);
}

// §5.2: with causal attention, the hidden states captured when the queries are inserted during generation
// equal those of one teacher-forced pass over the same sequence, and the next token comes from the last query.
TEST_F(SuperLink, GenerationCaptureEqualsTeacherForcedPass) {
    const std::vector<int64_t> prompt = tok_->encode("A chat. USER: find the cat ASSISTANT:");
    llm::KVCache cache = llm_->new_cache();
    llm::GenerateOptions go;
    go.max_new_tokens = 4;
    go.sampler.temperature = 0;  // greedy
    int64_t routed = -1;
    std::vector<at::Tensor> captured;
    // the tiny random model will not emit [DET] by itself: route its first token as if it were one
    go.insert_after = [&](int64_t id) {
        if (routed >= 0) return at::Tensor();
        routed = id;
        return q_->det;
    };
    go.on_inserted = [&](int64_t id, const at::Tensor & h) {
        EXPECT_EQ(id, routed);
        captured.push_back(h.clone());
    };
    std::vector<int64_t> out;
    const at::Tensor pe = llm_->embed(at::tensor(prompt, at::kLong).view({1, -1}));
    const auto st = llm::generate_from_embeds(*llm_, cache, pe, prompt, go, [&](int64_t id) {
        out.push_back(id);
        return true;
    });
    ASSERT_EQ(captured.size(), 1u);
    EXPECT_EQ(st.inserted_tokens, 4);
    ASSERT_GE(out.size(), 2u);
    EXPECT_EQ(cache.length, int64_t(prompt.size()) + 1 + 4 + int64_t(out.size()) - 2);
    // teacher-forced: prompt + routed token + the 4 query rows in one pass
    std::vector<int64_t> ids = prompt;
    ids.push_back(routed);
    at::Tensor e = at::cat({llm_->embed(at::tensor(ids, at::kLong).view({1, -1})), q_->det.unsqueeze(0)}, 1);
    llm::KVCache c2 = llm_->new_cache();
    const at::Tensor h = llm_->hidden_states(e, c2);
    const at::Tensor ref = h[0].narrow(0, int64_t(ids.size()), 4);
    EXPECT_LT((captured[0] - ref).abs().max().item<float>(), 1e-4f);
    // the token after the routed one is the argmax of the last query's logits
    const at::Tensor logits = llm_->lm_head(h[0][h.size(1) - 1]);
    EXPECT_EQ(out[1], logits.argmax().item<int64_t>());
}

TEST_F(SuperLink, GenerationContextOverflowNamesTheQueries) {
    const std::vector<int64_t> prompt = tok_->encode("hello");
    llm::LlamaOptions lo;
    lo.dtype = at::kFloat;
    lo.context = int64_t(prompt.size()) + 3;
    auto small = llm::LlamaForCausalLM::from_pretrained(*cfg_, *map_, lo);
    llm::KVCache cache = small->new_cache();
    llm::GenerateOptions go;
    go.max_new_tokens = 2;
    go.insert_after = [&](int64_t) { return q_->det; };
    const at::Tensor pe = small->embed(at::tensor(prompt, at::kLong).view({1, -1}));
    const std::string err = test::error_of([&] {
        llm::generate_from_embeds(*small, cache, pe, prompt, go, [](int64_t) { return true; });
    });
    EXPECT_NE(err.find("routing token needs 4 more positions"), std::string::npos) << err;
}

TEST_F(SuperLink, AnswerParserNamesEachGroup) {
    auto parse = [&](const std::string & s) {
        std::vector<int64_t> ids = tok_->encode(s, /*add_bos=*/false);
        std::vector<std::string> out;
        for (const auto & g : superlink::parse_answer(*tok_, ids, *rt_)) out.push_back(std::string(superlink::route_token(g.route)) + g.phrase);
        return out;
    };
    EXPECT_EQ(parse("Yes, here are the results for cat[DET], remote control[DET] in the image."),
              (std::vector<std::string>{"[DET]cat", "[DET]remote control"}));
    EXPECT_EQ(parse("Sure, these objects are region1[DET], region2[DET]."),
              (std::vector<std::string>{"[DET]region1", "[DET]region2"}));
    EXPECT_EQ(parse("Yes, here are the results for person[DET] in the image. Utilizing keypoints detection, the "
                    "image analysis reveals the location of left eye[POSE], nose[POSE]."),
              (std::vector<std::string>{"[DET]person", "[POSE]left eye", "[POSE]nose"}));
    EXPECT_EQ(parse("Yes, it is [GRD]."), (std::vector<std::string>{"[GRD]"}));
    // teacher-forced answers: the query ids are skipped
    EXPECT_EQ(parse(superlink::detection_prompt({"cat", "dog"}, 4).answer),
              (std::vector<std::string>{"[DET]cat", "[DET]dog"}));
    EXPECT_TRUE(parse("no routing here").empty());
}

}  // namespace
