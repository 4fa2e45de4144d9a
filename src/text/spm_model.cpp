#include "text/spm_model.h"

#include <cstdint>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <set>

namespace visionllm::text {

namespace {

void varint(std::string & o, uint64_t v) {
    while (v >= 0x80) {
        o += char(uint8_t(v | 0x80));
        v >>= 7;
    }
    o += char(uint8_t(v));
}
void key(std::string & o, int field, int wire) { varint(o, uint64_t(field) << 3 | uint64_t(wire)); }
void field_varint(std::string & o, int field, uint64_t v) {
    key(o, field, 0);
    varint(o, v);
}
void field_bytes(std::string & o, int field, const std::string & b) {
    key(o, field, 2);
    varint(o, b.size());
    o += b;
}
void field_float(std::string & o, int field, float f) {
    key(o, field, 5);
    uint32_t bits;
    std::memcpy(&bits, &f, 4);
    for (int i = 0; i < 4; ++i) o += char(uint8_t(bits >> (8 * i)));
}

const char * const k_meta = "\xe2\x96\x81";  // U+2581, SentencePiece's whitespace

}  // namespace

std::string serialize_spm_model(const SpmModelSpec & s) {
    std::string out;
    for (const auto & p : s.pieces) {
        std::string m;
        field_bytes(m, 1, p.piece);
        field_float(m, 2, p.score);
        field_varint(m, 3, uint64_t(p.type));
        field_bytes(out, 1, m);
    }
    std::string t;  // TrainerSpec
    field_varint(t, 3, uint64_t(s.model_type));
    field_varint(t, 4, s.pieces.size());
    field_varint(t, 25, s.split_digits);
    field_varint(t, 35, s.byte_fallback);
    field_varint(t, 40, 0);  // unk
    field_varint(t, 41, 1);  // bos
    field_varint(t, 42, 2);  // eos
    field_varint(t, 43, uint64_t(int64_t(-1)));  // pad: none
    field_bytes(out, 2, t);
    std::string n;  // NormalizerSpec
    field_bytes(n, 1, s.normalizer_name);
    field_varint(n, 3, s.add_dummy_prefix);
    field_varint(n, 4, s.remove_extra_whitespaces);
    field_varint(n, 5, 1);  // escape whitespaces
    field_bytes(out, 3, n);
    return out;
}

SpmModelSpec tiny_llama_spm_model() {
    SpmModelSpec s;
    s.pieces.push_back({"<unk>", 0, SpmPiece::Unknown});
    s.pieces.push_back({"<s>", 0, SpmPiece::Control});
    s.pieces.push_back({"</s>", 0, SpmPiece::Control});
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        s.pieces.push_back({buf, 0, SpmPiece::Byte});
    }
    // merged pieces first (higher score = earlier merge), then single characters
    static const char * const words[] = {
        "the", "a", "an", "and", "of", "to", "in", "is", "it", "that", "for", "on", "with", "as", "are", "this",
        "be", "at", "by", "what", "how", "image", "picture", "photo", "describe", "detect", "object", "person",
        "cat", "dog", "man", "woman", "there", "in", "user", "assistant", "chat", "between", "curious", "artificial",
        "intelligence", "gives", "helpful", "detailed", "polite", "answers", "question", "questions", "please",
        "region", "box", "segment", "pose", "generate", "edit", "hello", "world", "yes", "no", "color", "red",
        "blue", "green", "left", "right", "one", "two", "three"};
    std::set<std::string> seen;
    std::vector<std::string> merged;
    auto add_prefixes = [&](const std::string & w) {
        // every prefix of two or more characters (the meta symbol is 3 bytes)
        const size_t first = w.compare(0, 3, k_meta) == 0 ? 4 : 2;
        for (size_t n = first; n <= w.size(); ++n) {
            std::string p = w.substr(0, n);
            if (seen.insert(p).second) merged.push_back(p);
        }
    };
    for (const char * w : words) {
        add_prefixes(std::string(k_meta) + w);
        std::string cap = w;
        cap[0] = char(std::toupper(cap[0]));
        add_prefixes(std::string(k_meta) + cap);
    }
    // "USER" and "ASSISTANT" appear upper-case in the vicuna template
    add_prefixes(std::string(k_meta) + "USER");
    add_prefixes(std::string(k_meta) + "ASSISTANT");
    for (const char * w : {"er", "ing", "ed", "es", "ly", "tion", "ion", "he", "th"}) add_prefixes(w);
    float score = -1;
    for (const auto & p : merged) {
        s.pieces.push_back({p, score, SpmPiece::Normal});
        score -= 1;
    }
    // single characters: the meta symbol, ASCII printable
    std::vector<std::string> chars = {k_meta};
    for (char c = 33; c < 127; ++c) chars.emplace_back(1, c);
    for (const auto & c : chars) {
        if (seen.count(c)) continue;
        s.pieces.push_back({c, score, SpmPiece::Normal});
        score -= 1;
    }
    return s;
}

}  // namespace visionllm::text
