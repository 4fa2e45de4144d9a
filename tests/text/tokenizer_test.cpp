// Tokenizer against transformers 4.34's slow LlamaTokenizer (goldens from
// tools/golden/tokenizer.py): a LLaMA-style BPE model (byte fallback, split
// digits, dummy prefix) plus VisionLLMv2's added tokens as train.py adds them,
// legacy true and false, and a directory in the pre-4.34 format (added_tokens.json,
// special tokens as strings and objects, single_word/lstrip/rstrip, overlapping
// tokens that trip transformers' Trie, clean-up of spaces); 460 strings: ids,
// pieces, decode, decode without special tokens; streaming decode; the errors a
// user can meet.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <random>
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

// a variant's golden JSON files with the committed model next to them
struct TokDir {
    test::TempDir dir{"tok"};
    explicit TokDir(const std::string & variant) {
        const std::string src = test::golden_dir("tokenizer") + "/" + variant;
        for (const char * f : {"added_tokens.json", "special_tokens_map.json", "tokenizer_config.json"})
            if (std::ifstream(src + "/" + f).good()) test::copy_file(src + "/" + f, dir.file(f));
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

std::string dump(const std::string & s) { return nlohmann::json(s).dump(); }

class TokenizerGolden : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(TokenizerGolden, MatchesTransformersSlowLlamaTokenizer) {
    TokDir d(GetParam());
    const text::Tokenizer tok = text::Tokenizer::load(d.dir.path());
    EXPECT_EQ(tok.legacy(), GetParam() != "legacy_false");
    const auto & strings = cases()["strings"];
    const auto & want = cases()[GetParam()];
    ASSERT_GE(strings.size(), 450u);
    ASSERT_EQ(want.size(), strings.size());
    int failures = 0;
    for (size_t i = 0; i < strings.size() && failures < 15; ++i) {
        const std::string s = strings[i].get<std::string>();
        const std::vector<int64_t> golden_ids = want[i]["ids"].get<std::vector<int64_t>>();
        const auto ids = tok.encode(s);
        const auto pieces = tok.tokenize(s);
        const std::string dec = tok.decode(golden_ids), skip = tok.decode(golden_ids, true);
        const bool ok_ids = ids == golden_ids;
        const bool ok_pieces = pieces == want[i]["pieces"].get<std::vector<std::string>>();
        const bool ok_dec = dec == want[i]["decode"].get<std::string>();
        const bool ok_skip = skip == want[i]["decode_skip"].get<std::string>();
        if (!(ok_ids && ok_pieces && ok_dec && ok_skip)) {
            ++failures;
            ADD_FAILURE() << "case " << i << " " << dump(s) << ": ids " << ok_ids << " pieces " << ok_pieces
                          << " decode " << ok_dec << " skip " << ok_skip << "\n got ids " << nlohmann::json(ids).dump()
                          << "\n want    " << want[i]["ids"].dump() << "\n got pieces " << nlohmann::json(pieces).dump()
                          << "\n want       " << want[i]["pieces"].dump() << "\n got decode " << dump(dec) << " want "
                          << want[i]["decode"].dump() << "\n got skip " << dump(skip) << " want "
                          << want[i]["decode_skip"].dump();
        }
    }
}

TEST_P(TokenizerGolden, StreamingDecodeEqualsDecodeAndNeverSplitsACharacter) {
    TokDir d(GetParam());
    const text::Tokenizer tok = text::Tokenizer::load(d.dir.path());
    const auto & want = cases()[GetParam()];
    for (bool skip : {true, false}) {
        for (size_t i = 0; i < want.size(); ++i) {
            const std::vector<int64_t> ids = want[i]["ids"].get<std::vector<int64_t>>();
            text::StreamDecoder sd(tok, skip);
            std::string all;
            for (int64_t id : ids) {
                const std::string chunk = sd.push(id);
                EXPECT_TRUE(valid_utf8(chunk)) << "case " << i << " id " << id << " chunk " << dump(chunk);
                all += chunk;
            }
            const std::string rest = sd.flush();
            EXPECT_TRUE(valid_utf8(rest)) << "case " << i;
            EXPECT_EQ(all + rest, tok.decode(ids, skip)) << "case " << i << " skip " << skip;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Variants, TokenizerGolden, ::testing::Values("legacy_true", "legacy_false", "hf_legacy_format"));

// random id sequences rich in what makes decoding non-local: byte pieces (whole and cut characters), pieces
// that are only spaces, special and added tokens standing apart, unknown ids
TEST_P(TokenizerGolden, StreamingDecodeOfRandomIdsEqualsDecode) {
    TokDir d(GetParam());
    const text::Tokenizer tok = text::Tokenizer::load(d.dir.path());
    std::vector<int64_t> bytes, spaces, added;
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        bytes.push_back(tok.token_to_id(name));
    }
    for (const char * sp : {"\xE2\x96\x81", "\xE2\x96\x81\xE2\x96\x81", "\xE2\x96\x81\xE2\x96\x81\xE2\x96\x81\xE2\x96\x81"})
        if (tok.token_to_id(sp) >= 0) spaces.push_back(tok.token_to_id(sp));
    for (const auto & a : tok.added_tokens()) added.push_back(a.id);
    ASSERT_FALSE(spaces.empty());
    std::mt19937 rng(1234);
    auto pick = [&](const std::vector<int64_t> & v) { return v[rng() % v.size()]; };
    for (bool skip : {true, false}) {
        for (int n = 0; n < 400; ++n) {
            std::vector<int64_t> ids;
            const size_t len = 1 + rng() % 40;
            while (ids.size() < len) {
                const unsigned r = rng() % 10;
                if (r < 4) {
                    ids.push_back(int64_t(rng() % uint32_t(tok.vocab_size())));
                } else if (r < 6) {  // one character as bytes, sometimes cut short
                    const std::string ch[] = {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\xE6\x97\xA5", "\x0A"};
                    const std::string & c = ch[rng() % 5];
                    const size_t keep = rng() % 4 == 0 ? 1 + rng() % c.size() : c.size();
                    for (size_t k = 0; k < keep; ++k) ids.push_back(bytes[static_cast<unsigned char>(c[k])]);
                } else if (r < 8) {
                    ids.push_back(pick(spaces));
                } else {
                    ids.push_back(pick(added));
                }
            }
            text::StreamDecoder sd(tok, skip);
            std::string all;
            for (int64_t id : ids) {
                const std::string chunk = sd.push(id);
                EXPECT_TRUE(valid_utf8(chunk)) << nlohmann::json(ids).dump() << " chunk " << dump(chunk);
                all += chunk;
            }
            all += sd.flush();
            ASSERT_EQ(all, tok.decode(ids, skip)) << "skip " << skip << " ids " << nlohmann::json(ids).dump();
        }
    }
}

TEST(Tokenizer, StreamingHoldsBackBytesUntilTheCharacterIsComplete) {
    TokDir d("legacy_false");
    const text::Tokenizer tok = text::Tokenizer::load(d.dir.path());
    // "€" (E2 82 AC) has no piece of its own: three byte-fallback pieces
    const std::vector<int64_t> ids = tok.encode("€", false);
    ASSERT_EQ(ids.size(), 4u) << nlohmann::json(ids).dump();  // "▁" + 3 bytes
    text::StreamDecoder sd(tok);
    std::string out;
    for (size_t i = 0; i + 1 < ids.size(); ++i) out += sd.push(ids[i]);
    EXPECT_EQ(out, "");
    EXPECT_EQ(sd.push(ids.back()), "€");
    EXPECT_EQ(sd.flush(), "");
}

TEST(Tokenizer, AddedTokenIdsComeFromTheFiles) {
    TokDir d("legacy_false");
    const text::Tokenizer tok = text::Tokenizer::load(d.dir.path());
    EXPECT_EQ(tok.vocab_size(), 1226);
    EXPECT_EQ(tok.token_to_id("<im_patch>"), 1202);
    EXPECT_EQ(tok.token_to_id("[EMB8]"), 1225);
    EXPECT_EQ(tok.token_to_id("no such token"), -1);
    EXPECT_EQ(tok.id_to_piece(1201), "<image>");
    EXPECT_EQ(tok.bos_id(), 1);
    EXPECT_EQ(tok.eos_id(), 2);
    EXPECT_EQ(tok.unk_id(), 0);
    EXPECT_TRUE(tok.is_special(2));
    EXPECT_TRUE(tok.is_special(1202));
    EXPECT_FALSE(tok.is_special(300));
    EXPECT_EQ(tok.encode("<im_patch>", false), std::vector<int64_t>{1202});
    // the ids are read: renumber the added tokens and the encoding follows
    nlohmann::json j = nlohmann::json::parse(test::read_file(d.dir.file("tokenizer_config.json")));
    nlohmann::json dec = nlohmann::json::object();
    for (auto & [k, v] : j["added_tokens_decoder"].items())
        dec[std::to_string(std::stoll(k) >= 1200 ? std::stoll(k) + 5 : std::stoll(k))] = v;
    j["added_tokens_decoder"] = dec;
    test::write_file(d.dir.file("tokenizer_config.json"), j.dump());
    const text::Tokenizer moved = text::Tokenizer::load(d.dir.path());
    EXPECT_EQ(moved.encode("<im_patch>", false), std::vector<int64_t>{1207});
    EXPECT_EQ(moved.vocab_size(), 1226);
}

// The released files give <s>, </s>, <unk> lstrip/rstrip true in added_tokens_decoder (train.py's add_tokens
// rewrote them), but from_pretrained re-adds bos/eos/unk from their string attributes, which strip nothing.
TEST(Tokenizer, BaseSpecialTokensDoNotStripDespiteTheDecoderFlags) {
    TokDir d("legacy_false");
    const nlohmann::json cfg = nlohmann::json::parse(test::read_file(d.dir.file("tokenizer_config.json")));
    ASSERT_TRUE(cfg["added_tokens_decoder"]["2"]["lstrip"].get<bool>());
    const text::Tokenizer tok = text::Tokenizer::load(d.dir.path());
    EXPECT_EQ(tok.tokenize("a </s> b"), (std::vector<std::string>{"\xE2\x96\x81" "a", "\xE2\x96\x81", "</s>",
                                                                  "\xE2\x96\x81" "b"}));
    // while VisionLLMv2's own tokens do
    EXPECT_EQ(tok.tokenize("a <image> b"), (std::vector<std::string>{"\xE2\x96\x81" "a", "<image>", "b"}));
}

TEST(Tokenizer, OlderFormatDirectory) {
    TokDir d("hf_legacy_format");
    const text::Tokenizer tok = text::Tokenizer::load(d.dir.path());
    EXPECT_TRUE(tok.legacy());  // no `legacy` key: 4.34 keeps the legacy behaviour
    EXPECT_TRUE(tok.clean_up_spaces());
    // special tokens the vocabulary lacks get the next ids, in attribute order
    EXPECT_EQ(tok.token_to_id("<pad>"), 1207);
    EXPECT_EQ(tok.token_to_id("<new>"), 1208);
    EXPECT_EQ(tok.vocab_size(), 1209);
    EXPECT_TRUE(tok.is_special(tok.token_to_id("<sw>")));
    EXPECT_FALSE(tok.is_special(tok.token_to_id("world")));  // added_tokens.json alone: not special
    // transformers' Trie takes "<tag-a>" from the earlier start and never splits "tag" out of "<tagX-a>"
    const auto pieces = tok.tokenize("<tagX-a>");
    EXPECT_EQ(std::count(pieces.begin(), pieces.end(), "tag"), 0) << nlohmann::json(pieces).dump();
}

TEST(Tokenizer, MakeTinyCheckpointLoads) {
    for (const bool llama : {false, true}) {
        const std::string args = llama ? " --components llm --arch llama" : " --components llm,vision";
        test::TempDir dir("tok-tiny");
        std::string out;
        ASSERT_EQ(test::run(test::bin_path("visionllm") + " make-tiny -o " + dir.path() + args + " --quiet 2>&1", &out), 0)
            << out;
        const text::Tokenizer tok = text::Tokenizer::load(dir.path());
        const auto ids = tok.encode("hello world");
        EXPECT_EQ(ids.front(), tok.bos_id());
        EXPECT_EQ(tok.decode(ids, true), "hello world");
        if (llama) {  // a plain Llama directory: the SentencePiece vocabulary only
            EXPECT_EQ(tok.token_to_id("<im_patch>"), -1);
            EXPECT_EQ(tok.added_tokens().size(), 3u);  // <unk> <s> </s>
            EXPECT_EQ(error_of([&] { tok.id_to_piece(tok.vocab_size() - 1); }), "");
            EXPECT_NE(error_of([&] { tok.id_to_piece(tok.vocab_size()); }), "");
            continue;
        }
        const nlohmann::json added = nlohmann::json::parse(test::read_file(dir.file("added_tokens.json")));
        const int64_t patch = added["<im_patch>"].get<int64_t>();
        EXPECT_EQ(tok.encode("<im_patch><im_patch>", false), (std::vector<int64_t>{patch, patch}));
        EXPECT_EQ(tok.encode("<im_patch> x", false).front(), patch);
        EXPECT_EQ(tok.vocab_size(), added["[EMB8]"].get<int64_t>() + 1);
    }
}

TEST(Tokenizer, LoadsFromTheModelFilePath) {
    TokDir d("legacy_false");
    const text::Tokenizer by_file = text::Tokenizer::load(d.dir.file("tokenizer.model"));
    EXPECT_EQ(by_file.token_to_id("<image>"), 1201);
    EXPECT_FALSE(by_file.legacy());
}

TEST(Tokenizer, ErrorsNameTheProblem) {
    test::TempDir dir("tok-bad");
    std::string e = error_of([&] { text::Tokenizer::load(dir.path()); });
    EXPECT_NE(e.find("tokenizer.model"), std::string::npos) << e;
    EXPECT_NE(e.find(dir.path()), std::string::npos) << e;
    test::write_file(dir.file("tokenizer.model"), "not a model");
    e = error_of([&] { text::Tokenizer::load(dir.path()); });
    EXPECT_NE(e.find("not a SentencePiece model"), std::string::npos) << e;

    {
        TokDir d("legacy_true");
        test::write_file(d.dir.file("tokenizer_config.json"), "{");
        e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
        EXPECT_NE(e.find("tokenizer_config.json"), std::string::npos) << e;
        EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
        test::write_file(d.dir.file("tokenizer_config.json"), "{\"added_tokens_decoder\": {\"x\": {\"content\": \"a\"}}}");
        e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
        EXPECT_NE(e.find("added_tokens_decoder.x"), std::string::npos) << e;
        test::write_file(d.dir.file("tokenizer_config.json"), "{\"added_tokens_decoder\": {\"1300\": {\"lstrip\": true}}}");
        e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
        EXPECT_NE(e.find("added_tokens_decoder.1300"), std::string::npos) << e;
        test::write_file(d.dir.file("tokenizer_config.json"),
                         "{\"added_tokens_decoder\": {\"1300\": {\"content\": \"<a>\"}, \"1301\": {\"content\": \"<a>\"}}}");
        e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
        EXPECT_NE(e.find("\"<a>\" has two ids, 1300 and 1301"), std::string::npos) << e;
        test::write_file(d.dir.file("tokenizer_config.json"), "{\"legacy\": \"no\"}");
        e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
        EXPECT_NE(e.find("legacy must be true or false"), std::string::npos) << e;
    }
    {
        TokDir d("hf_legacy_format");  // added_tokens.json is read in the older format only
        test::write_file(d.dir.file("added_tokens.json"), "{\"<image>\": \"x\"}");
        e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
        EXPECT_NE(e.find("added_tokens.json: the id of \"<image>\""), std::string::npos) << e;
        test::write_file(d.dir.file("added_tokens.json"), "[1]");
        e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
        EXPECT_NE(e.find("added_tokens.json: expected a JSON object"), std::string::npos) << e;
        test::write_file(d.dir.file("added_tokens.json"), "{}");
        test::write_file(d.dir.file("special_tokens_map.json"), "{\"bos_token\": {\"lstrip\": true}}");
        e = error_of([&] { text::Tokenizer::load(d.dir.path()); });
        EXPECT_NE(e.find("bos_token"), std::string::npos) << e;
    }

    TokDir ok("legacy_true");
    const text::Tokenizer tok = text::Tokenizer::load(ok.dir.path());
    e = error_of([&] { tok.decode({5, 99999}); });
    EXPECT_NE(e.find("token id 99999 is out of range"), std::string::npos) << e;
    e = error_of([&] { tok.decode({-3}); });
    EXPECT_NE(e.find("token id -3"), std::string::npos) << e;
    e = error_of([&] { tok.id_to_piece(1226); });
    EXPECT_NE(e.find("token id 1226 is out of range: the tokenizer has 1226 tokens"), std::string::npos) << e;
}
