#include "text/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sys/stat.h>

#include <algorithm>

#include "io/json_file.h"
#include "visionllm/error.h"

namespace visionllm::text {

namespace {

const std::string k_underline = "\xE2\x96\x81";  // SPIECE_UNDERLINE "▁"

bool is_dir(const std::string & p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool starts_with(const std::string & s, const std::string & p) { return s.compare(0, p.size(), p) == 0; }

std::string replace_all(std::string s, const std::string & from, const std::string & to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
    return s;
}

// ---- Python's str.isspace() over UTF-8, for str.lstrip()/rstrip()
bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// the code point starting at s[i] and its length in bytes (invalid bytes count as one)
std::pair<uint32_t, size_t> utf8_at(const std::string & s, size_t i) {
    const auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 1;
    if (i + n > s.size()) n = 1;
    uint32_t c = n == 1 ? b : (b & (0xFF >> (n + 1)));
    for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    return {c, n};
}

std::string py_lstrip(const std::string & s) {
    size_t i = 0;
    while (i < s.size()) {
        auto [c, n] = utf8_at(s, i);
        if (!py_space(c)) break;
        i += n;
    }
    return s.substr(i);
}

std::string py_rstrip(const std::string & s) {
    size_t end = s.size();
    while (end > 0) {
        size_t start = end - 1;
        while (start > 0 && (static_cast<unsigned char>(s[start]) & 0xC0) == 0x80 && end - start < 4) --start;
        auto [c, n] = utf8_at(s, start);
        if (start + n != end || !py_space(c)) break;
        end = start;
    }
    return s.substr(0, end);
}

// ---- ModelProto with normalizer_spec.add_dummy_prefix = false, as LlamaTokenizer.get_spm_processor
// builds it for legacy=False (MergeFrom: a later field wins, so the flag is appended to the message)
uint64_t read_varint(const std::string & b, size_t & i, const std::string & what) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        VLLM_CHECK(i < b.size(), what, ": truncated SentencePiece model");
        const auto c = static_cast<unsigned char>(b[i++]);
        v |= uint64_t(c & 0x7F) << shift;
        if (!(c & 0x80)) return v;
    }
    fail(what, ": malformed SentencePiece model (varint)");
}

void write_varint(std::string & out, uint64_t v) {
    while (v >= 0x80) {
        out.push_back(char(0x80 | (v & 0x7F)));
        v >>= 7;
    }
    out.push_back(char(v));
}

std::string without_dummy_prefix(const std::string & model, const std::string & what) {
    std::string out, normalizer;
    size_t i = 0;
    while (i < model.size()) {
        const size_t field_start = i;
        const uint64_t tag = read_varint(model, i, what);
        const int wire = int(tag & 7);
        const uint64_t field = tag >> 3;
        size_t body_start = i, body_len = 0;
        switch (wire) {
            case 0: read_varint(model, i, what); break;
            case 1: i += 8; break;
            case 5: i += 4; break;
            case 2:
                body_len = size_t(read_varint(model, i, what));
                body_start = i;
                VLLM_CHECK(body_len <= model.size() - i, what, ": truncated SentencePiece model");
                i += body_len;
                break;
            default: fail(what, ": malformed SentencePiece model (wire type ", wire, ")");
        }
        VLLM_CHECK(i <= model.size(), what, ": truncated SentencePiece model");
        if (field == 3 && wire == 2)
            normalizer += model.substr(body_start, body_len);  // repeated messages merge
        else
            out += model.substr(field_start, i - field_start);
    }
    normalizer += std::string("\x18\x00", 2);  // field 3 (add_dummy_prefix), varint 0
    out.push_back(char((3 << 3) | 2));
    write_varint(out, normalizer.size());
    out += normalizer;
    return out;
}

// a token field of the configs: "<s>", {"content": "<s>", ...} or null
std::string token_string(const nlohmann::json & v) {
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return "";
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer &&) noexcept = default;
Tokenizer & Tokenizer::operator=(Tokenizer &&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string & path) {
    const bool dir = is_dir(path);
    const std::string root = dir ? path : (path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/')));
    const std::string model_path = dir ? path + "/tokenizer.model" : path;
    VLLM_CHECK(io::file_exists(model_path), model_path, ": no SentencePiece model (tokenizer.model) found",
               dir ? " in " + path : std::string());
    Tokenizer t;
    t.source_ = model_path;

    // configs: tokenizer_config.json first, special_tokens_map.json fills what it lacks
    nlohmann::json cfg = nlohmann::json::object(), smap = nlohmann::json::object(), added = nlohmann::json::object();
    const std::string cfg_path = root + "/tokenizer_config.json", smap_path = root + "/special_tokens_map.json",
                      added_path = root + "/added_tokens.json";
    if (io::file_exists(cfg_path)) cfg = io::read_json_file(cfg_path);
    if (io::file_exists(smap_path)) smap = io::read_json_file(smap_path);
    if (io::file_exists(added_path)) added = io::read_json_file(added_path);
    VLLM_CHECK(cfg.is_object(), cfg_path, ": expected a JSON object");
    VLLM_CHECK(smap.is_object(), smap_path, ": expected a JSON object");
    VLLM_CHECK(added.is_object(), added_path, ": expected a JSON object of token -> id");
    auto flag = [&](const char * key, bool def) {
        if (!cfg.contains(key) || cfg[key].is_null()) return def;
        VLLM_CHECK(cfg[key].is_boolean(), cfg_path, ": ", key, " must be true or false");
        return cfg[key].get<bool>();
    };
    t.legacy_ = flag("legacy", true);  // transformers 4.34: None means the legacy behaviour
    t.add_bos_ = flag("add_bos_token", true);
    t.add_eos_ = flag("add_eos_token", false);
    t.clean_up_spaces_ = flag("clean_up_tokenization_spaces", false);
    auto special = [&](const char * key, const std::string & def) {
        std::string s = cfg.contains(key) ? token_string(cfg[key]) : "";
        if (s.empty() && smap.contains(key)) s = token_string(smap[key]);
        return s.empty() && !cfg.contains(key) && !smap.contains(key) ? def : s;
    };
    t.bos_ = special("bos_token", "<s>");
    t.eos_ = special("eos_token", "</s>");
    t.unk_ = special("unk_token", "<unk>");
    const std::string pad = special("pad_token", "");

    // the SentencePiece model, patched for legacy=false
    std::string bytes = io::read_text_file(model_path);
    if (!t.legacy_) bytes = without_dummy_prefix(bytes, model_path);
    t.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto st = t.sp_->LoadFromSerializedProto(bytes);
    VLLM_CHECK(st.ok(), model_path, ": not a SentencePiece model: ", st.ToString());
    t.sp_size_ = t.sp_->GetPieceSize();

    // added tokens: tokenizer_config's added_tokens_decoder (with lstrip/rstrip), then added_tokens.json
    auto add = [&](const std::string & content, int64_t id, bool lstrip, bool rstrip, bool is_special,
                   const std::string & where) {
        VLLM_CHECK(!content.empty(), where, ": an added token with empty content");
        VLLM_CHECK(id >= 0, where, ": added token \"", content, "\" has a negative id ", id);
        auto by_content = t.added_by_content_.find(content);
        if (by_content != t.added_by_content_.end()) {
            VLLM_CHECK(t.added_[by_content->second].id == id, where, ": added token \"", content, "\" has id ", id,
                       " here but ", t.added_[by_content->second].id, " elsewhere");
            return;
        }
        VLLM_CHECK(!t.added_by_id_.count(id), where, ": id ", id, " is given to both \"",
                   t.added_[t.added_by_id_[id]].content, "\" and \"", content, "\"");
        VLLM_CHECK(id >= t.sp_size_ || t.sp_->IdToPiece(int(id)) == content, where, ": added token \"", content,
                   "\" has id ", id, ", which the SentencePiece model gives to \"", t.sp_->IdToPiece(int(id)), "\"");
        t.added_by_content_[content] = t.added_.size();
        t.added_by_id_[id] = t.added_.size();
        t.added_.push_back({content, id, lstrip, rstrip, is_special});
    };
    if (cfg.contains("added_tokens_decoder")) {
        VLLM_CHECK(cfg["added_tokens_decoder"].is_object(), cfg_path, ": added_tokens_decoder must be an object");
        for (const auto & [key, v] : cfg["added_tokens_decoder"].items()) {
            const std::string where = cfg_path + ": added_tokens_decoder." + key;
            int64_t id = -1;
            try {
                size_t used = 0;
                id = std::stoll(key, &used);
                if (used != key.size()) id = -1;
            } catch (const std::exception &) {
            }
            VLLM_CHECK(id >= 0 && v.is_object() && v.contains("content") && v["content"].is_string(), where,
                       ": expected an id key and an object with a string \"content\"");
            add(v["content"].get<std::string>(), id, v.value("lstrip", false), v.value("rstrip", false),
                v.value("special", true), where);
        }
    }
    for (const auto & [content, v] : added.items()) {
        VLLM_CHECK(v.is_number_integer(), added_path, ": the id of \"", content, "\" is not an integer");
        add(content, v.get<int64_t>(), false, false, true, added_path);
    }

    // all_special_tokens: bos, eos, unk, pad and additional_special_tokens; each is an added token
    std::vector<std::string> specials = {t.bos_, t.eos_, t.unk_, pad};
    const nlohmann::json & extra = cfg.contains("additional_special_tokens") ? cfg["additional_special_tokens"]
                                   : smap.contains("additional_special_tokens") ? smap["additional_special_tokens"]
                                                                                 : nlohmann::json::array();
    VLLM_CHECK(extra.is_array(), "additional_special_tokens must be a list");
    for (const auto & e : extra) specials.push_back(token_string(e));
    for (const std::string & s : specials) {
        if (s.empty()) continue;
        t.special_tokens_.insert(s);
        if (!t.added_by_content_.count(s)) {
            const int id = t.sp_->PieceToId(s);
            VLLM_CHECK(id != t.sp_->unk_id() || s == t.sp_->IdToPiece(id), root, ": special token \"", s,
                       "\" is neither an added token nor in the SentencePiece model");
            add(s, id, false, false, true, root);
        }
        t.special_ids_.insert(t.added_[t.added_by_content_[s]].id);
    }
    t.bos_id_ = t.token_to_id(t.bos_);
    t.eos_id_ = t.token_to_id(t.eos_);
    t.unk_id_ = t.token_to_id(t.unk_);
    std::vector<std::string> unk_pieces;
    t.sp_->Encode(t.unk_, &unk_pieces);
    t.unk_pieces_ = unk_pieces.size();
    return t;
}

int64_t Tokenizer::vocab_size() const {
    int64_t n = sp_size_;
    for (const auto & a : added_) n += a.id >= sp_size_ ? 1 : 0;
    return n;
}

int64_t Tokenizer::token_to_id(const std::string & token) const {
    auto it = added_by_content_.find(token);
    if (it != added_by_content_.end()) return added_[it->second].id;
    const int id = sp_->PieceToId(token);
    if (id == sp_->unk_id() && sp_->IdToPiece(id) != token) return -1;
    return id;
}

std::string Tokenizer::piece_of(int64_t id) const {
    auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) return added_[it->second].content;
    VLLM_CHECK(id >= 0 && id < sp_size_, "token id ", id, " is out of range: the tokenizer has ", vocab_size(),
               " tokens (", source_, ")");
    return sp_->IdToPiece(int(id));
}

std::string Tokenizer::id_to_piece(int64_t id) const { return piece_of(id); }

// PreTrainedTokenizer._tokenize for one chunk without added tokens
std::vector<std::string> Tokenizer::sp_tokenize(const std::string & chunk) const {
    std::vector<std::string> pieces;
    sp_->Encode(chunk, &pieces);
    if (legacy_ || !(starts_with(chunk, k_underline) || starts_with(chunk, " "))) return pieces;
    // the model has no dummy prefix here, and would drop a leading space: encode behind the unk token
    pieces.clear();
    sp_->Encode(unk_ + chunk, &pieces);
    if (pieces.size() >= unk_pieces_) pieces.erase(pieces.begin(), pieces.begin() + int64_t(unk_pieces_));
    return pieces;
}

// PreTrainedTokenizer.tokenize: split on added tokens (leftmost, longest), let them strip the
// whitespace next to them, tokenize the rest
std::vector<std::string> Tokenizer::split_and_tokenize(const std::string & text) const {
    std::vector<std::string> chunks;
    std::vector<int> added_at;  // index into added_ or -1
    size_t start = 0;
    for (size_t i = 0; i < text.size();) {
        int best = -1;
        for (size_t k = 0; k < added_.size(); ++k) {
            const std::string & c = added_[k].content;
            if (text.compare(i, c.size(), c) == 0 && (best < 0 || c.size() > added_[size_t(best)].content.size()))
                best = int(k);
        }
        if (best < 0) {
            ++i;
            continue;
        }
        if (i > start) {
            chunks.push_back(text.substr(start, i - start));
            added_at.push_back(-1);
        }
        chunks.push_back(added_[size_t(best)].content);
        added_at.push_back(best);
        i += added_[size_t(best)].content.size();
        start = i;
    }
    if (start < text.size()) {
        chunks.push_back(text.substr(start));
        added_at.push_back(-1);
    }
    for (size_t i = 0; i < chunks.size(); ++i) {
        if (added_at[i] < 0) continue;
        const AddedToken & a = added_[size_t(added_at[i])];
        if (a.rstrip && i + 1 < chunks.size() && !chunks[i + 1].empty()) chunks[i + 1] = py_lstrip(chunks[i + 1]);
        if (a.lstrip && i > 0 && !chunks[i - 1].empty()) chunks[i - 1] = py_rstrip(chunks[i - 1]);
    }
    std::vector<std::string> out;
    for (size_t i = 0; i < chunks.size(); ++i) {
        if (chunks[i].empty()) continue;
        if (added_at[i] >= 0) {
            out.push_back(chunks[i]);
        } else {
            std::vector<std::string> p = sp_tokenize(chunks[i]);
            out.insert(out.end(), p.begin(), p.end());
        }
    }
    return out;
}

std::vector<std::string> Tokenizer::tokenize(const std::string & text) const {
    if (legacy_ || text.empty()) return split_and_tokenize(text);
    std::vector<std::string> t = split_and_tokenize(k_underline + replace_all(text, k_underline, " "));
    if (t.size() > 1 && t[0] == k_underline && special_tokens_.count(t[1])) t.erase(t.begin());
    return t;
}

std::vector<int64_t> Tokenizer::encode(const std::string & text) const { return encode(text, add_bos_, add_eos_); }

std::vector<int64_t> Tokenizer::encode(const std::string & text, bool add_bos, bool add_eos) const {
    std::vector<int64_t> ids;
    if (add_bos) ids.push_back(bos_id_);
    for (const std::string & p : tokenize(text)) {
        auto it = added_by_content_.find(p);
        ids.push_back(it != added_by_content_.end() ? added_[it->second].id : int64_t(sp_->PieceToId(p)));
    }
    if (add_eos) ids.push_back(eos_id_);
    return ids;
}

// LlamaTokenizer.convert_tokens_to_string
std::string Tokenizer::tokens_to_string(std::vector<std::string> tokens) const {
    if (!tokens.empty() && starts_with(tokens[0], k_underline)) tokens[0] = tokens[0].substr(k_underline.size());
    std::vector<std::string> current;
    std::string out, piece_text;
    bool prev_special = false;
    for (size_t i = 0; i < tokens.size(); ++i) {
        if (special_tokens_.count(tokens[i])) {
            if (!prev_special && i != 0 && legacy_) out += " ";
            piece_text.clear();
            sp_->Decode(current, &piece_text);
            out += piece_text + tokens[i];
            prev_special = true;
            current.clear();
        } else {
            current.push_back(tokens[i]);
            prev_special = false;
        }
    }
    piece_text.clear();
    sp_->Decode(current, &piece_text);
    return out + piece_text;
}

// PreTrainedTokenizer._decode: added tokens that are not special (and special ones beyond the
// SentencePiece vocabulary) stand apart, joined with spaces; the rest goes through the model
std::string Tokenizer::decode(const std::vector<int64_t> & ids, bool skip_special_tokens) const {
    std::vector<std::string> sub_texts, current;
    for (int64_t id : ids) {
        const std::string tok = piece_of(id);  // checks the range
        if (skip_special_tokens && special_ids_.count(id)) continue;
        auto it = added_by_content_.find(tok);
        const bool stands_apart = it != added_by_content_.end() && added_by_id_.count(id) &&
                                  (!special_tokens_.count(tok) || added_[it->second].id >= sp_size_);
        if (stands_apart) {
            if (!current.empty()) {
                std::string s = tokens_to_string(current);
                if (!s.empty()) sub_texts.push_back(s);
                current.clear();
            }
            sub_texts.push_back(tok);
        } else {
            current.push_back(tok);
        }
    }
    if (!current.empty()) sub_texts.push_back(tokens_to_string(current));
    std::string text;
    for (size_t i = 0; i < sub_texts.size(); ++i) text += (i ? " " : "") + sub_texts[i];
    if (clean_up_spaces_) {
        static const std::pair<const char *, const char *> rules[] = {
            {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
            {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
        for (const auto & [from, to] : rules) text = replace_all(text, from, to);
    }
    return text;
}

// ---------------------------------------------------------------- streaming

namespace {
// true when s ends inside a UTF-8 sequence or with U+FFFD (SentencePiece's stand-in for the bytes of
// a character whose remaining byte-fallback pieces have not arrived yet)
bool ends_incomplete(const std::string & s) {
    if (s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0) return true;
    size_t i = s.size(), cont = 0;
    while (i > 0 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80 && cont < 4) {
        --i;
        ++cont;
    }
    if (i == 0) return cont > 0;
    const auto lead = static_cast<unsigned char>(s[i - 1]);
    const size_t need = lead < 0x80 ? 0 : (lead >> 5) == 0x6 ? 1 : (lead >> 4) == 0xE ? 2 : (lead >> 3) == 0x1E ? 3 : 0;
    return need > cont;
}
}  // namespace

std::string StreamDecoder::push(int64_t id) {
    ids_.push_back(id);
    const std::string text = tok_.decode(ids_, skip_special_);
    if (ends_incomplete(text) || text.size() <= printed_) return "";
    std::string out = text.substr(printed_);
    printed_ = text.size();
    return out;
}

std::string StreamDecoder::flush() {
    const std::string text = tok_.decode(ids_, skip_special_);
    std::string out = text.size() > printed_ ? text.substr(printed_) : "";
    printed_ = text.size();
    return out;
}

}  // namespace visionllm::text
