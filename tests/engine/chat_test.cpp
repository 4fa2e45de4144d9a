// Engine::chat end to end on the tiny random VisionLLMv2 checkpoint that
// make-tiny writes, against tools/golden/chat.py's Python reference (CLIP and
// Llama from transformers 4.34, PIL anyres tiling, the region encoder of §3,
// tokenizer_image_token splicing): the same prompt ids and the same greedy
// tokens for an image question, a multi-tile image, a box region and a
// two-turn conversation.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "superlink/splice.h"
#include "text/tokenizer.h"
#include "visionllm/engine.h"
#include "visionllm/error.h"
#include "visionllm/make_tiny.h"

using namespace visionllm;
using json = nlohmann::json;

namespace {

class ChatGolden : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new test::TempDir("chat-golden");
        golden_ = new json(json::parse(test::read_file(test::golden_dir("chat") + "/expected.json")));
        MakeTinyOptions o;
        o.out_dir = dir_->path();
        o.dtype = DType::F32;  // as the golden's make-tiny --dtype f32 --seed 0
        o.seed = 0;
        o.progress = false;
        make_tiny(o);
        EngineOptions eo;
        eo.device = "cpu";
        eo.dtype = "f32";
        eo.vision_dtype = "f32";
        engine_ = Engine::load(dir_->path(), eo).release();
    }
    static void TearDownTestSuite() {
        delete engine_;
        delete golden_;
        delete dir_;
    }

    static ChatRequest request(const json & c) {
        ChatRequest r;
        r.image = ImageInput::from_file(test::golden_dir("chat") + "/" + c["image"].get<std::string>());
        for (const auto & b : c["boxes"]) {
            Region reg;
            reg.kind = Region::Kind::Box;
            reg.coords = b.get<std::vector<double>>();
            r.regions.push_back(reg);
        }
        r.gen.max_new_tokens = (*golden_)["max_new_tokens"].get<int64_t>();
        r.gen.temperature = 0;
        return r;
    }

    static test::TempDir * dir_;
    static json * golden_;
    static Engine * engine_;
};

test::TempDir * ChatGolden::dir_ = nullptr;
json * ChatGolden::golden_ = nullptr;
Engine * ChatGolden::engine_ = nullptr;

TEST_F(ChatGolden, PromptIdsMatchTokenizerImageToken) {
    const text::Tokenizer tok = text::Tokenizer::load(dir_->path());
    for (const auto & [name, c] : (*golden_)["cases"].items()) {
        const int64_t tiles = c["tiles"].get<int64_t>();
        for (const auto & t : c["turns"]) {
            const auto want = t["prompt_ids"].get<std::vector<int64_t>>();
            const auto got = superlink::tokenize_with_image(tok, t["prompt"].get<std::string>(), tiles * 16);
            EXPECT_EQ(got, want) << name;
        }
    }
}

TEST_F(ChatGolden, GreedyTokensMatchThePythonReference) {
    for (const auto & [name, c] : (*golden_)["cases"].items()) {
        engine_->reset();
        ChatRequest r = request(c);
        std::vector<std::string> answers;
        for (const auto & t : c["turns"]) answers.push_back(t["answer"].get<std::string>());
        // the conversation turn by turn, as a user of the API builds it
        size_t k = 0;
        for (const auto & t : c["turns"]) {
            const std::string prompt = t["prompt"].get<std::string>();
            // the question is the text between the last "USER: " (after "<image>\n" on the first turn) and " ASSISTANT:"
            const size_t u = prompt.rfind("USER: ") + 6;
            std::string q = prompt.substr(u, prompt.rfind(" ASSISTANT:") - u);
            if (k == 0 && q.rfind("<image>\n", 0) == 0) q = q.substr(8);
            r.messages.push_back({"user", q});
            std::string streamed;
            const ChatResult res = engine_->chat(r, [&](const std::string & s) {
                streamed += s;
                return true;
            });
            EXPECT_EQ(res.ids, t["generated"].get<std::vector<int64_t>>()) << name << " turn " << k + 1;
            EXPECT_EQ(res.text, answers[k]) << name << " turn " << k + 1;
            EXPECT_EQ(res.prompt_tokens, int64_t(t["prompt_ids"].size())) << name;
            EXPECT_EQ(res.tiles, c["tiles"].get<int64_t>()) << name;
            EXPECT_EQ(res.grid_cols, c["grid"][0].get<int64_t>()) << name;
            EXPECT_EQ(res.grid_rows, c["grid"][1].get<int64_t>()) << name;
            if (k > 0) EXPECT_LT(res.prompt_tokens_run, res.prompt_tokens) << name << ": the first turn was not reused";
            r.messages.push_back({"assistant", res.text});
            ++k;
        }
    }
}

TEST_F(ChatGolden, ASecondRequestWithAnotherImageStartsAfresh) {
    engine_->reset();
    const json & c = (*golden_)["cases"]["image_question"];
    ChatRequest r = request(c);
    r.messages = {{"user", "What is in the image?"}};
    const auto want = c["turns"][0]["generated"].get<std::vector<int64_t>>();
    EXPECT_EQ(engine_->chat(r).ids, want);
    ChatRequest other = request((*golden_)["cases"]["multi_tile"]);
    other.messages = r.messages;
    const ChatResult o = engine_->chat(other);
    EXPECT_EQ(o.prompt_tokens_run, o.prompt_tokens);
    // and back: the first answer again, computed from scratch
    const ChatResult again = engine_->chat(r);
    EXPECT_EQ(again.ids, want);
    EXPECT_EQ(again.prompt_tokens_run, again.prompt_tokens);
}

TEST_F(ChatGolden, BadRequestsAreErrorsNamingTheProblem) {
    engine_->reset();
    ChatRequest r = request((*golden_)["cases"]["image_question"]);
    r.gen.max_new_tokens = 2;
    r.messages = {{"user", "What is <reg>region1<region></reg>?"}};
    std::string e = test::error_of([&] { engine_->chat(r); });
    EXPECT_NE(e.find("1 <region> placeholder but 0 regions were given"), std::string::npos) << e;
    r.messages = {{"user", "hi"}};
    Region box;
    box.coords = {1, 2, 10, 20};
    r.regions = {box};
    e = test::error_of([&] { engine_->chat(r); });
    EXPECT_NE(e.find("0 <region> placeholders but 1 region was given"), std::string::npos) << e;
    r.regions.clear();
    r.messages = {{"user", "a"}, {"user", "b"}};
    e = test::error_of([&] { engine_->chat(r); });
    EXPECT_NE(e.find("message 2 has role 'user'"), std::string::npos) << e;
    r.messages = {};
    e = test::error_of([&] { engine_->chat(r); });
    EXPECT_NE(e.find("no messages"), std::string::npos) << e;
    r.messages = {{"user", "hi"}};
    r.image = ImageInput::from_file("/nonexistent/cat.jpg");
    e = test::error_of([&] { engine_->chat(r); });
    EXPECT_NE(e.find("/nonexistent/cat.jpg"), std::string::npos) << e;
    r.image = ImageInput();
    r.messages = {{"user", "<image>\nhi"}};
    e = test::error_of([&] { engine_->chat(r); });
    EXPECT_NE(e.find("no image was given"), std::string::npos) << e;
    // text-only chat works on the same engine
    r.messages = {{"user", "hi"}};
    EXPECT_EQ(engine_->chat(r).tiles, 0);
}

TEST(Engine, LoadErrorsNameTheDirectory) {
    std::string e = test::error_of([] { Engine::load("/nonexistent/model"); });
    EXPECT_NE(e.find("/nonexistent/model"), std::string::npos) << e;
    // a plain Llama directory is not a VisionLLMv2 checkpoint
    e = test::error_of([] { Engine::load(test::golden_dir("llama") + "/mha"); });
    EXPECT_NE(e.find("VisionLLMv2"), std::string::npos) << e;
    test::TempDir d("engine-opts");
    MakeTinyOptions o;
    o.out_dir = d.path();
    o.progress = false;
    o.components = {"llm", "vision"};
    make_tiny(o);
    EngineOptions eo;
    eo.device = "cpu";
    eo.dtype = "f64";
    e = test::error_of([&] { Engine::load(d.path(), eo); });
    EXPECT_NE(e.find("dtype: \"f64\""), std::string::npos) << e;
    // without a region encoder, regions are refused by name
    eo.dtype = "auto";
    auto eng = Engine::load(d.path(), eo);
    ChatRequest r;
    r.image = ImageInput::from_file(test::golden_dir("chat") + "/square.png");
    Region box;
    box.coords = {1, 2, 10, 20};
    r.regions = {box};
    r.messages = {{"user", "What is <reg>region1<region></reg>?"}};
    e = test::error_of([&] { eng->chat(r); });
    EXPECT_NE(e.find("no region encoder"), std::string::npos) << e;
}

}  // namespace
