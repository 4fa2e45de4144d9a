// `visionllm chat`, run as a user runs it, on make-tiny's checkpoint: --json
// answers carry the greedy ids of tools/golden/chat.py's reference (an image
// question, a box region, a two-turn -i session); bad input is a clear error.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/cli_util.h"

using namespace visionllm::test;
using json = nlohmann::json;

namespace {

class CliChat : public ::testing::Test {
protected:
    static void SetUpTestSuite() {
        dir_ = new TempDir("cli-chat");
        std::string out;
        ASSERT_EQ(run(vl() + " make-tiny -o " + dir_->path() + " --dtype f32 --seed 0 --quiet", &out), 0) << out;
        golden_ = new json(json::parse(read_file(golden_dir("chat") + "/expected.json")));
    }
    static void TearDownTestSuite() {
        delete golden_;
        delete dir_;
    }
    static std::string chat() {
        return vl() + " chat -m " + dir_->path() + " --device cpu --dtype f32 -n " +
               std::to_string((*golden_)["max_new_tokens"].get<int>());
    }
    static std::string image(const std::string & name) { return golden_dir("chat") + "/" + name; }
    static std::vector<int64_t> want(const char * c, int turn = 0) {
        return (*golden_)["cases"][c]["turns"][turn]["generated"].get<std::vector<int64_t>>();
    }
    static TempDir * dir_;
    static json * golden_;
};
TempDir * CliChat::dir_ = nullptr;
json * CliChat::golden_ = nullptr;

TEST_F(CliChat, JsonAnswerHasTheGoldenIds) {
    const std::string out = stdout_of(chat() + " --image " + image("square.png") + " -p 'What is in the image?' --json");
    const json j = json::parse(out);
    EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), want("image_question")) << out;
    EXPECT_EQ(j["answer"], (*golden_)["cases"]["image_question"]["turns"][0]["answer"]);
    EXPECT_EQ(j["tiles"], 1);
}

TEST_F(CliChat, BoxRegion) {
    const std::string q = "What is the category of <reg>region1<region></reg>? Using only one word or phrase.";
    const std::string out =
        stdout_of(chat() + " --image " + image("wide.png") + " --box 10,5,60.5,33 -p " + quote(q) + " --json");
    const json j = json::parse(out);
    EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), want("region_box")) << out;
    EXPECT_EQ(j["tiles"], 5);
    EXPECT_EQ(j["grid"], json::array({4, 1}));
}

TEST_F(CliChat, InteractiveSecondTurnAndCommands) {
    std::string out;
    ASSERT_EQ(run("(printf 'And what shape?\\n' | " + chat() + " --image " + image("square.png") +
                      " -p 'What color is it?' --json -i 2>/dev/null)",
                  &out),
              0)
        << out;
    std::vector<json> lines;
    std::istringstream ss(out);
    for (std::string line; std::getline(ss, line);)
        if (!line.empty()) lines.push_back(json::parse(line));
    ASSERT_EQ(lines.size(), 2u) << out;
    EXPECT_EQ(lines[0]["ids"].get<std::vector<int64_t>>(), want("two_turns", 0));
    EXPECT_EQ(lines[1]["ids"].get<std::vector<int64_t>>(), want("two_turns", 1));
    EXPECT_LT(lines[1]["prompt_tokens_run"].get<int>(), lines[1]["prompt_tokens"].get<int>());

    // /reset forgets the first turn; a bad /image is reported and the session goes on; /quit ends it
    ASSERT_EQ(run("(printf '/reset\\nWhat color is it?\\n/image /nonexistent.png\\nhi\\n/quit\\nnever\\n' | " + chat() +
                      " --image " + image("square.png") + " -p 'What color is it?' --json -i)",
                  &out),
              0)
        << out;
    EXPECT_NE(out.find("conversation cleared"), std::string::npos) << out;
    EXPECT_NE(out.find("/nonexistent.png"), std::string::npos) << out;
    size_t answers = 0;
    for (size_t at = out.find("\"answer\""); at != std::string::npos; at = out.find("\"answer\"", at + 1)) ++answers;
    EXPECT_EQ(answers, 2u) << out;  // the first question, asked again after /reset; "hi" failed with the bad image
}

TEST_F(CliChat, StreamsTextAndTimings) {
    std::string out;
    ASSERT_EQ(run(chat() + " --image " + image("square.png") + " -p 'What is in the image?'", &out), 0) << out;
    EXPECT_NE(out.find((*golden_)["cases"]["image_question"]["turns"][0]["answer"].get<std::string>()),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("image: 1 tile"), std::string::npos) << out;
}

TEST_F(CliChat, BadInputIsAClearError) {
    const std::string img = " --image " + image("square.png");
    EXPECT_NE(all_of(chat() + " --box 1,2,3 -p hi" + img, 1).find("1,2,3"), std::string::npos);
    EXPECT_NE(all_of(chat() + " --box 1,2,3,4 -p hi", 1).find("need --image"), std::string::npos);
    EXPECT_NE(all_of(chat() + " --box 1,2,10,20 -p hi" + img, 1).find("<region> placeholders"), std::string::npos);
    EXPECT_NE(all_of(chat() + " --image /nonexistent.jpg -p hi", 1).find("/nonexistent.jpg"), std::string::npos);
    EXPECT_NE(all_of(chat() + " --mask /nonexistent.png -p '<reg>r<region></reg>'" + img, 1).find("/nonexistent.png"),
              std::string::npos);
    EXPECT_NE(all_of(chat() + " --max-tiles 0 -p hi" + img, 1).find("max_tiles"), std::string::npos);
    EXPECT_NE(all_of(chat() + img, 1).find("-p/--prompt"), std::string::npos);
}

}  // namespace
