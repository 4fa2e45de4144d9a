// `visionllm tokenize` run as a user runs it, on directories that hold only
// tokenizer files: the ids (and pieces) of the goldens for every variant, text
// from a file, and clear errors with a non-zero exit.
#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/cli_util.h"

using namespace visionllm::test;
using json = nlohmann::json;

namespace {
const json & cases() {
    static const json j = json::parse(read_file(golden_dir("tokenizer") + "/cases.json"));
    return j;
}

// a variant's golden tokenizer files with the committed model: a directory holding only a tokenizer
struct TokenizerDir {
    TempDir dir{"cli-tokenize"};
    explicit TokenizerDir(const std::string & variant) {
        const std::string src = golden_dir("tokenizer") + "/" + variant;
        for (const char * f : {"added_tokens.json", "special_tokens_map.json", "tokenizer_config.json"})
            if (std::ifstream(src + "/" + f).good()) copy_file(src + "/" + f, dir.file(f));
        copy_file(source_dir() + "/tests/data/spm/llama_bpe.model", dir.file("tokenizer.model"));
    }
};

size_t case_index(const std::string & s) {
    const auto & strings = cases()["strings"];
    for (size_t i = 0; i < strings.size(); ++i)
        if (strings[i].get<std::string>() == s) return i;
    ADD_FAILURE() << "no golden case " << s;
    return 0;
}
}  // namespace

TEST(CliTokenizeCmd, IdsAndPiecesMatchTheGoldensForEveryVariant) {
    // a few strings per variant (each run loads LibTorch): what sets the variants apart
    const std::map<std::string, std::vector<std::string>> texts = {
        {"legacy_true", {"<image>\nWhat is this?", "a </s> b", "  a  ", "emoji \U0001F680 in text"}},
        {"legacy_false", {"<image>\nWhat is this?", "a </s> b", "<reg>region1<region></reg>", "Stra\u00DFe"}},
        {"hf_legacy_format", {"<image>\nWhat is this?", "x <new> y", "<tagX-a>", "a<sw>b"}}};
    for (const auto & [variant, strings] : texts) {
        TokenizerDir d(variant);
        for (const std::string & s : strings) {
            const auto & want = cases()[variant][case_index(s)];
            const std::string out = stdout_of(vl() + " tokenize -m " + d.dir.path() + " -p " + quote(s) + " --pieces");
            const size_t nl = out.find('\n');
            ASSERT_NE(nl, std::string::npos) << out;
            EXPECT_EQ(ints(out.substr(0, nl)), want["ids"].get<std::vector<int64_t>>()) << variant << " " << s;
            // the second line: one piece per id, BOS first
            std::vector<std::string> pieces{"<s>"};
            for (const auto & p : want["pieces"]) pieces.push_back(p.get<std::string>());
            std::string line;
            for (size_t i = 0; i < pieces.size(); ++i) line += (i ? " " : "") + pieces[i];
            EXPECT_EQ(out.substr(nl + 1), line + "\n") << variant << " " << s;
        }
    }
}

TEST(CliTokenizeCmd, JsonNoBosAndTextFromAFile) {
    TokenizerDir d("legacy_false");
    const std::string s = "A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                          "helpful, detailed, and polite answers to the user's questions. USER: <image>\nWhat is this? "
                          "ASSISTANT:";
    const auto want = cases()["legacy_false"][case_index(s)]["ids"].get<std::vector<int64_t>>();
    write_file(d.dir.file("prompt.txt"), s);
    EXPECT_EQ(ints(stdout_of(vl() + " tokenize -m " + d.dir.path() + " -f " + d.dir.file("prompt.txt"))), want);
    const json j = json::parse(stdout_of(vl() + " tokenize -m " + d.dir.path() + " -f " + d.dir.file("prompt.txt") +
                                         " --json --no-bos"));
    EXPECT_EQ(j["ids"].get<std::vector<int64_t>>(), std::vector<int64_t>(want.begin() + 1, want.end()));
    EXPECT_EQ(j["pieces"].size(), j["ids"].size());
    EXPECT_EQ(j["pieces"][0], "\xE2\x96\x81" "A");
    // the help documents the output
    const std::string help = stdout_of(vl() + " tokenize --help");
    EXPECT_NE(help.find("--pieces"), std::string::npos) << help;
    EXPECT_NE(help.find("one line"), std::string::npos) << help;
}

TEST(CliTokenizeCmd, ErrorsAreClearAndExitNonZero) {
    TempDir empty("cli-tokenize-empty");
    std::string out = all_of(vl() + " tokenize -m " + empty.path() + " -p hi", 1);
    EXPECT_NE(out.find("tokenizer.model"), std::string::npos) << out;
    EXPECT_NE(out.find(empty.path()), std::string::npos) << out;
    out = all_of(vl() + " tokenize -m " + empty.path() + "/nowhere -p hi", 1);
    EXPECT_NE(out.find("nowhere"), std::string::npos) << out;
    EXPECT_NE(all_of(vl() + " tokenize -p hi", 1).find("--model"), std::string::npos);
    TokenizerDir d("legacy_true");
    EXPECT_NE(all_of(vl() + " tokenize -m " + d.dir.path(), 1).find("-p/--prompt"), std::string::npos);
    write_file(d.dir.file("tokenizer_config.json"), "{\"add_bos_token\": 1}");
    out = all_of(vl() + " tokenize -m " + d.dir.path() + " -p hi", 1);
    EXPECT_NE(out.find("tokenizer_config.json: add_bos_token must be true or false"), std::string::npos) << out;
}
