// Tokenizer against transformers 4.34's slow LlamaTokenizer (goldens from
// tools/golden/tokenizer.py): a LLaMA-style BPE model (byte fallback, split
// digits, dummy prefix) plus VisionLLMv2's added tokens, legacy true and false,
// 400+ strings: ids, pieces, decode, decode without special tokens; streaming
// decode; the errors a user can meet.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "text/tokenizer.h"

using namespace visionllm;
using visionllm::test::error_of;

namespace {

const nlohmann::json & cases() {
    static const nlohmann::json j = nlohmann::json::parse(test::read_file(test::golden_dir("tokenizer") + "/cases.json"));
    return j;
}

// the golden JSON files with the committed model next to them
struct TokDir {
    test::TempDir dir{"tok"};
    explicit TokDir(const std::string & variant) {
        const std::string src = test::golden_dir("tokenizer") + "/" + variant;
        for (const char * f : {"added_tokens.json", "special_tokens_map.json", "tokenizer_config.json"})
            test::copy_file(src + "/" + f, dir.file(f));
        test::copy_file(test::source_dir() + "/tests/data/spm/llama_bpe.model", dir.file("tokenizer.model"));
    }
};

bool valid_utf8(const std::string & s) {
    for (size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
        if (n == 0 || i + n > s.size()) return false;
        for (size_t k = 1; k < n; ++k)
            if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
        i += n;
    }
    return true;
}

class TokenizerGolden : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(TokenizerGolden, MatchesTransformersSlowLlamaTokenizer) {
    TokDir d(GetParam());
    const text::Tokenizer tok = text::Tokenizer::load(d.dir.path());
    EXPECT_EQ(tok.legacy(), GetParam() == "legacy_true");
    const auto & strings = cases()["strings"];
    const auto & want = cases()[GetParam()];
    ASSERT_GE(strings.size(), 200u);
    int failures = 0;
    for (size_t i = 0; i < strings.size() && failures < 15; ++i) {
        const std::string s = strings[i].get<std::string>();
        const auto ids = tok.encode(s);
        const bool ok_ids = ids == want[i]["ids"].get<std::vector<int64_t>>();
        const bool ok_pieces = tok.tokenize(s) == want[i]["pieces"].get<std::vector<std::string>>();
        const std::vector<int64_t> golden_ids = want[i]["ids"].get<std::vector<int64_t>>();
        const bool ok_dec = tok.decode(golden_ids) == want[i]["decode"].get<std::string>();
        const bool ok_skip = tok.decode(golden_ids, true) == want[i]["decode_skip"].get<std::string>();
        if (!(ok_ids && ok_pieces && ok_dec && ok_skip)) {
            ++failures;
            ADD_FAILURE() << "case " << i << " " << nlohmann::json(s).dump() << ": ids " << ok_ids << " pieces "
                          << ok_pieces << " decode " << ok_dec << " skip " << ok_skip << "\n got ids "
                          << nlohmann::json(ids).dump() << "\n want    " << want[i]["ids"].dump() << "\n got decode "
                          << nlohmann::json(tok.decode(golden_ids)).dump() << " want " << want[i]["decode"].dump()
                          << "\n got skip " << nlohmann::json(tok.decode(golden_ids, true)).dump() << " want "
                          << want[i]["decode_skip"].dump();
        }
    }
}

TEST_P(TokenizerGolden, StreamingDecodeEqualsDecodeAndNeverSplitsACharacter) {
    TokDir d(GetParam());
    const text::Tokenizer tok = text::Tokenizer::load(d.dir.path());
    const auto & want = cases()[GetParam()];
    for (size_t i = 0; i < want.size(); ++i) {
        const std::vector<int64_t> ids = want[i]["ids"].get<std::vector<int64_t>>();
        text::StreamDecoder sd(tok);
        std::string all;
        for (int64_t id : ids) {
            const std::string chunk = sd.push(id);
            EXPECT_TRUE(valid_utf8(chunk)) << "case " << i << " id " << id;
            all += chunk;
        }
        all += sd.flush();
        EXPECT_EQ(all, tok.decode(ids, true)) << "case " << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Legacy, TokenizerGolden, ::testing::Values("legacy_true", "legacy_false"));

TEST(Tokenizer, AddedTokenIdsComeFromTheFiles) {
    TokDir d("legacy_false");
    const text::Tokenizer tok = text::Tokenizer::load(d.dir.path());
    EXPECT_EQ(tok.vocab_size(), 1226);
    EXPECT_EQ(tok.token_to_id("<im_patch>"), 1202);
    EXPECT_EQ(tok.token_to_id("[EMB8]"), 1225);
    EXPECT_EQ(tok.token_to_id("no such token"), -1);
    EXPECT_EQ(tok.bos_id(), 1);
    EXPECT_EQ(tok.eos_id(), 2);
    EXPECT_TRUE(tok.is_special(2));
    EXPECT_TRUE(tok.is_special(1202));
    EXPECT_FALSE(tok.is_special(300));
    EXPECT_EQ(tok.encode("<im_patch>", false), std::vector<int64_t>{1202});
    // the ids are read: renumber the added tokens and the encoding follows
    std::string cfg = test::read_file(d.dir.file("tokenizer_config.json"));
    nlohmann::json j = nlohmann::json::parse(cfg);
    nlohmann::json dec = nlohmann::json::object();
    for (auto & [k, v] : j["added_tokens_decoder"].items()) dec[std::to_string(std::stoll(k) >= 1200 ? std::stoll(k) + 5 : std::stoll(k))] = v;
    j["added_tokens_decoder"] = dec;
    test::write_file(d.dir.file("tokenizer_config.json"), j.dump());
    nlohmann::json added = nlohmann::json::parse(test::read_file(d.dir.file("added_tokens.json")));
    for (auto & [k, v] : added.items())
        if (v.get<int64_t>() >= 1200) v = v.get<int64_t>() + 5;
    test::write_file(d.dir.file("added_tokens.json"), added.dump());
    const text::Tokenizer moved = text::Tokenizer::load(d.dir.path());
    EXPECT_EQ(moved.encode("<im_patch>", false), std::vector<int64_t>{1207});
}

TEST(Tokenizer, MakeTinyCheckpointLoads) {
    test::TempDir dir("tok-tiny");
    std::string out;
    ASSERT_EQ(test::run(test::bin_path("visionllm") + " make-tiny -o " + dir.path() + " --components llm,vision --quiet 2>&1", &out), 0) << out;
    const text::Tokenizer tok = text::Tokenizer::load(dir.path());
    const nlohmann::json added = nlohmann::json::parse(test::read_file(dir.file("added_tokens.json")));
    EXPECT_EQ(tok.encode("<im_patch><im_patch>", false),
              (std::vector<int64_t>{added["<im_patch>"].get<int64_t>(), added["<im_patch>"].get<int64_t>()}));
    EXPECT_EQ(tok.vocab_size(), added["[EMB8]"].get<int64_t>() + 1);
    const auto ids = tok.encode("hello world");
    EXPECT_EQ(ids.front(), 1);
    EXPECT_EQ(tok.decode(ids, true), "hello world");
}

TEST(Tokenizer, ErrorsNameTheProblem) {
    test::TempDir dir("tok-bad");
    std::string e = error_of([&] { text::Tokenizer::load(dir.path()); });
    EXPECT_NE(e.find("tokenizer.model"), std::string::npos) << e;
    test::write_file(dir.file("tokenizer.model"), "not a model");
    e = error_of([&] { text::Tokenizer::load(dir.path()); });
    EXPECT_NE(e.find("not a SentencePiece model"), std::string::npos) << e;

    TokDir d("legacy_true");
    test::write_file(d.dir.file("added_tokens.json"), "{\"<image>\": \"x\"}");
    e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
    EXPECT_NE(e.find("added_tokens.json"), std::string::npos) << e;
    test::write_file(d.dir.file("added_tokens.json"), "{\"<image>\": 1205}");
    e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
    EXPECT_NE(e.find("\"<image>\" has id 1205"), std::string::npos) << e;
    test::write_file(d.dir.file("added_tokens.json"), "{");
    e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
    EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;

    TokDir ok("legacy_true");
    const text::Tokenizer tok = text::Tokenizer::load(ok.dir.path());
    e = error_of([&] { tok.decode({5, 99999}); });
    EXPECT_NE(e.find("token id 99999 is out of range"), std::string::npos) << e;
    e = error_of([&] { tok.decode({-3}); });
    EXPECT_NE(e.find("token id -3"), std::string::npos) << e;
}
