// `visionllm run`, run as a user runs it: ids on stdout match the goldens,
// timings go to stderr, multi-turn chat, bad input is a clear error.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/cli_util.h"
#include "visionllm/checkpoint.h"

using namespace visionllm::test;

TEST(CliRun, PromptIdsAndPrintIdsGiveTheGreedyGolden) {
    // the golden directory has no tokenizer: ids in, ids out needs none
    for (const char * name : {"mha", "gqa"}) {
        const std::string dir = golden_dir("llama") + "/" + name;
        const visionllm::WeightMap expected = visionllm::WeightMap::open(dir + "/expected.safetensors");
        auto vec = [&](const char * t) {
            at::Tensor x = expected.get(t).contiguous();
            return std::vector<int64_t>(x.data_ptr<int64_t>(), x.data_ptr<int64_t>() + x.numel());
        };
        std::string ids;
        for (int64_t id : vec("input_ids")) ids += (ids.empty() ? "" : ",") + std::to_string(id);
        const std::string out =
            stdout_of(vl() + " run -m " + dir + " --prompt-ids " + ids + " --print-ids -n 32 --temp 0 --ignore-eos");
        EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
        EXPECT_EQ(ints(out), vec("greedy_f32")) << name << ": " << out;
    }
}

TEST(CliRun, TextChatOnAVisionLLMv2Checkpoint) {
    TempDir dir("cli-run");
    std::string out;
    ASSERT_EQ(run(vl() + " make-tiny -o " + dir.path() + " --components llm,vision --quiet 2>&1", &out), 0) << out;
    std::string err;
    ASSERT_EQ(run("(" + vl() + " run -m " + dir.path() + " -p 'What is in the image?' -n 8 --seed 1 >/dev/null)", &err), 0)
        << err;
    EXPECT_NE(err.find("tok/s"), std::string::npos) << err;
    // the same seed gives the same text; greedy and sampled runs both finish
    const std::string a = stdout_of(vl() + " run -m " + dir.path() + " -p hello -n 8 --temp 0.9 --seed 5");
    const std::string b = stdout_of(vl() + " run -m " + dir.path() + " -p hello -n 8 --temp 0.9 --seed 5");
    EXPECT_EQ(a, b);
    const std::string ids = stdout_of(vl() + " run -m " + dir.path() + " -p hello -n 6 --print-ids --ignore-eos");
    EXPECT_EQ(ints(ids).size(), 6u) << ids;
    // multi-turn: two more questions on stdin, each answered after the cached conversation
    std::string chat;
    ASSERT_EQ(run("printf 'and then?\\nwhy?\\n' | " + vl() + " run -m " + dir.path() + " -p hello -n 4 -i --print-ids", &chat), 0)
        << chat;
    size_t turns = 0;
    for (size_t at = chat.find("generation:"); at != std::string::npos; at = chat.find("generation:", at + 1)) ++turns;
    EXPECT_EQ(turns, 3u) << chat;
}

TEST(CliRun, NPredictMinusOneRunsUntilTheContextIsFull) {
    // 12 prompt tokens in a 20-token context: 8 decode steps fit, and the token sampled from the last one
    const std::string out = stdout_of(vl() + " run -m " + golden_dir("llama") +
                                      "/mha --prompt-ids 5,6,7,8,9,10,11,12,13,14,15,16 --print-ids -n -1 -c 20 --ignore-eos");
    EXPECT_EQ(ints(out).size(), 9u) << out;
    EXPECT_NE(all_of(vl() + " run -m " + golden_dir("llama") + "/mha --prompt-ids 5 --print-ids -n -2", 1).find("-n/--n-predict"),
              std::string::npos);
}

TEST(CliRun, BadInputIsAClearError) {
    const std::string dir = golden_dir("llama") + "/mha";
    EXPECT_NE(all_of(vl() + " run -m " + dir + " --prompt-ids 1,x,3 --print-ids", 1).find("--prompt-ids: \"x\""),
              std::string::npos);
    EXPECT_NE(all_of(vl() + " run -m " + dir + " --prompt-ids 1,2,3 --print-ids -c 2", 1).find("context length of 2"),
              std::string::npos);
    EXPECT_NE(all_of(vl() + " run -m " + dir + " --prompt-ids 1,500 --print-ids", 1).find("token id 500"),
              std::string::npos);
    // text needs a tokenizer, and this directory has none
    EXPECT_NE(all_of(vl() + " run -m " + dir + " -p hi", 1).find("tokenizer.model"), std::string::npos);
    EXPECT_NE(all_of(vl() + " run -m " + dir + " --prompt-ids 1 --print-ids --temp 1 --top-p 0", 1).find("--top-p"),
              std::string::npos);
    EXPECT_NE(all_of(vl() + " run -m /nonexistent --prompt-ids 1 --print-ids", 1).find("/nonexistent"),
              std::string::npos);
}
