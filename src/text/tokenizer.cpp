#include "text/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sys/stat.h>

#include <algorithm>
#include <unordered_set>

#include "io/json_file.h"
#include "visionllm/error.h"

namespace visionllm::text {

namespace {

using nlohmann::json;

const std::string k_underline = "\xE2\x96\x81";  // SPIECE_UNDERLINE "▁"


bool starts_with(const std::string & s, const std::string & p) { return s.compare(0, p.size(), p) == 0; }

std::string replace_all(std::string s, const std::string & from, const std::string & to) {
    for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
    return s;
}

// ---- UTF-8 as Python sees a str: code points. A byte that starts no valid sequence becomes one
// "character" 0xDC00 + byte (as surrogateescape would), which no token's content can hold.
struct CodePoints {
    std::vector<uint32_t> cp;
    std::vector<size_t> at;  // byte offset of each code point, plus the end
};

CodePoints code_points(const std::string & s) {
    CodePoints r;
    for (size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        const size_t n = b < 0x80 ? 1 : (b >> 5) == 0x6 ? 2 : (b >> 4) == 0xE ? 3 : (b >> 3) == 0x1E ? 4 : 0;
        bool ok = n > 0 && i + n <= s.size();
        for (size_t k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + k]) & 0xC0) == 0x80;
        r.at.push_back(i);
        if (!ok) {
            r.cp.push_back(0xDC00u + b);
            ++i;
            continue;
        }
        uint32_t c = n == 1 ? b : (b & (0xFF >> (n + 1)));
        for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
        r.cp.push_back(c);
        i += n;
    }
    r.at.push_back(s.size());
    return r;
}

// Python's str.isspace(), for str.lstrip()/rstrip() without arguments
bool py_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string py_lstrip(const std::string & s) {
    const CodePoints t = code_points(s);
    size_t i = 0;
    while (i < t.cp.size() && py_space(t.cp[i])) ++i;
    return s.substr(t.at[i]);
}

std::string py_rstrip(const std::string & s) {
    const CodePoints t = code_points(s);
    size_t i = t.cp.size();
    while (i > 0 && py_space(t.cp[i - 1])) --i;
    return s.substr(0, t.at[i]);
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

// ---- the configs' token values
// a token as an object: {"content": ..., "lstrip": ..., ...} (a "__type": "AddedToken" key is ignored)
AddedToken token_object(const json & v, const std::string & where) {
    VLLM_CHECK(v.is_object() && v.contains("content") && v["content"].is_string(), where,
               ": expected a token string or an object with a string \"content\"");
    AddedToken t;
    t.content = v["content"].get<std::string>();
    auto flag = [&](const char * key, bool & out) {
        if (!v.contains(key) || v[key].is_null()) return;
        VLLM_CHECK(v[key].is_boolean(), where, ".", key, " must be true or false");
        out = v[key].get<bool>();
    };
    flag("lstrip", t.lstrip);
    flag("rstrip", t.rstrip);
    flag("single_word", t.single_word);
    flag("special", t.special);
    return t;
}

// an entry of additional_special_tokens: a string (stripping both sides once added, as _add_tokens
// makes of strings) or a token object
struct SpecialEntry {
    AddedToken token;
    bool from_string = false;
};

SpecialEntry special_entry(const json & v, const std::string & where) {
    if (v.is_string()) return {AddedToken{v.get<std::string>()}, true};
    return {token_object(v, where), false};
}

bool contains_content(const std::vector<SpecialEntry> & list, const std::string & content) {
    return std::any_of(list.begin(), list.end(), [&](const SpecialEntry & e) { return e.token.content == content; });
}

int64_t parse_id(const std::string & key) {
    if (key.empty() || key.size() > 18 || !std::all_of(key.begin(), key.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return -1;
    return std::stoll(key);
}

}  // namespace

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer &&) noexcept = default;
Tokenizer & Tokenizer::operator=(Tokenizer &&) noexcept = default;
Tokenizer::~Tokenizer() = default;

// PreTrainedTokenizerBase._from_pretrained, LlamaTokenizer.__init__ and PreTrainedTokenizer.__init__ of 4.34,
// reduced to what decides the tokens, their ids and flags, and the special set
Tokenizer Tokenizer::load(const std::string & path) {
    const bool dir = io::dir_exists(path);
    const std::string root = dir ? path : (path.find('/') == std::string::npos ? "." : path.substr(0, path.rfind('/')));
    const std::string model_path = dir ? path + "/tokenizer.model" : path;
    VLLM_CHECK(io::file_exists(model_path), model_path, ": no SentencePiece model (tokenizer.model) found",
               dir ? " in " + path : std::string());
    Tokenizer t;
    t.source_ = model_path;

    const std::string cfg_path = root + "/tokenizer_config.json", smap_path = root + "/special_tokens_map.json",
                      added_path = root + "/added_tokens.json";
    auto read_object = [](const std::string & p, const char * what) {
        if (!io::file_exists(p)) return json::object();
        json j = io::read_json_file(p);
        VLLM_CHECK(j.is_object(), p, ": expected a JSON object", what);
        return j;
    };
    json init = read_object(cfg_path, "");
    const json smap = read_object(smap_path, "");
    const json added = read_object(added_path, " of token -> id");

    std::vector<SpecialEntry> additional;
    if (init.contains("additional_special_tokens") && !init["additional_special_tokens"].is_null()) {
        const json & a = init["additional_special_tokens"];
        VLLM_CHECK(a.is_array(), cfg_path, ": additional_special_tokens must be a list");
        for (size_t i = 0; i < a.size(); ++i)
            additional.push_back(special_entry(a[i], cfg_path + ": additional_special_tokens[" + std::to_string(i) + "]"));
    }
    std::map<int64_t, AddedToken> decoder;
    std::map<std::string, std::string> origin;  // the file a special-token attribute came from, when not the config
    if (init.contains("added_tokens_decoder")) {
        // saved by 4.34+: added_tokens_decoder is the truth; added_tokens.json and special_tokens_map.json are not read
        VLLM_CHECK(init["added_tokens_decoder"].is_object(), cfg_path, ": added_tokens_decoder must be an object");
        for (const auto & [key, v] : init["added_tokens_decoder"].items()) {
            const std::string where = cfg_path + ": added_tokens_decoder." + key;
            const int64_t id = parse_id(key);
            VLLM_CHECK(id >= 0, where, ": the key must be a token id");
            AddedToken tok = token_object(v, where);
            VLLM_CHECK(!tok.content.empty(), where, ": the token's content is empty");
            tok.id = id;
            // a listed string takes the entry's flags; special entries join the list
            auto listed = std::find_if(additional.begin(), additional.end(), [&](const SpecialEntry & e) {
                return e.from_string && e.token.content == tok.content;
            });
            if (listed != additional.end()) additional.erase(listed);
            if (tok.special && !contains_content(additional, tok.content)) additional.push_back({tok, false});
            decoder[id] = tok;
        }
    } else {
        // older files: special_tokens_map.json overrides the config; added_tokens.json's tokens strip both sides
        for (const auto & [key, v] : smap.items()) {
            if (key == "additional_special_tokens" && v.is_array()) {
                for (size_t i = 0; i < v.size(); ++i) {
                    SpecialEntry e = special_entry(v[i], smap_path + ": additional_special_tokens[" + std::to_string(i) + "]");
                    if (!contains_content(additional, e.token.content)) additional.push_back(e);
                }
            } else {
                init[key] = v;
                origin[key] = smap_path;
            }
        }
        for (const auto & [content, v] : added.items()) {
            VLLM_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, added_path, ": the id of \"", content,
                       "\" must be a non-negative integer, not ", v.dump());
            VLLM_CHECK(!content.empty(), added_path, ": a token with empty content (id ", v.dump(), ")");
            AddedToken tok{content, v.get<int64_t>(), true, true, false, false};
            decoder[tok.id] = tok;
        }
    }

    // the SentencePiece model, patched for legacy=false (`legacy` absent or null: 4.34 warns and keeps legacy)
    auto flag = [&](const char * key, bool def) {
        if (!init.contains(key) || init[key].is_null()) return def;
        VLLM_CHECK(init[key].is_boolean(), cfg_path, ": ", key, " must be true or false");
        return init[key].get<bool>();
    };
    t.legacy_ = flag("legacy", true);
    std::string bytes = io::read_text_file(model_path);
    if (!t.legacy_) bytes = without_dummy_prefix(bytes, model_path);
    t.sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
    const auto st = t.sp_->LoadFromSerializedProto(bytes);
    VLLM_CHECK(st.ok(), model_path, ": not a SentencePiece model: ", st.ToString());
    t.sp_size_ = t.sp_->GetPieceSize();

    // the special-token attributes: a string (stripping nothing), a token object, or null
    struct Attr {
        const char * key;
        const char * def;
    };
    static const Attr attrs[] = {{"bos_token", "<s>"},   {"eos_token", "</s>"}, {"unk_token", "<unk>"},
                                 {"sep_token", nullptr}, {"pad_token", nullptr}, {"cls_token", nullptr},
                                 {"mask_token", nullptr}};
    std::vector<AddedToken> specials;  // all_special_tokens_extended, in order, unique by content
    std::string bos, eos;
    for (const Attr & a : attrs) {
        AddedToken tok;
        if (init.contains(a.key) && !init[a.key].is_null()) {
            const json & v = init[a.key];
            const std::string where = (origin.count(a.key) ? origin[a.key] : cfg_path) + ": " + a.key;
            tok = v.is_string() ? AddedToken{v.get<std::string>()} : token_object(v, where);
        } else if (a.def) {
            tok.content = a.def;
        }
        if (tok.content.empty()) continue;
        if (a.key == std::string("bos_token")) bos = tok.content;
        if (a.key == std::string("eos_token")) eos = tok.content;
        if (a.key == std::string("unk_token")) t.unk_ = tok.content;
        tok.special = true;
        if (std::none_of(specials.begin(), specials.end(), [&](const AddedToken & s) { return s.content == tok.content; }))
            specials.push_back(tok);
    }
    std::vector<std::string> additional_names;
    for (SpecialEntry & e : additional) {
        if (e.from_string) e.token.lstrip = e.token.rstrip = true;
        e.token.special = true;
        additional_names.push_back(e.token.content);
        if (!e.token.content.empty() &&
            std::none_of(specials.begin(), specials.end(), [&](const AddedToken & s) { return s.content == e.token.content; }))
            specials.push_back(e.token);
    }

    // _add_tokens(all_special_tokens_extended, special_tokens=True): a token keeps the id its content has
    // (an added token or a piece) and takes these flags; one the vocabulary lacks gets the next id
    std::unordered_map<std::string, int64_t> vocab;  // get_vocab()
    for (int64_t i = 0; i < t.sp_size_; ++i) {
        auto it = decoder.find(i);
        vocab[it != decoder.end() ? it->second.content : t.sp_->IdToPiece(int(i))] = i;
    }
    for (const auto & [id, tok] : decoder) vocab[tok.content] = id;
    const int64_t next_id = int64_t(vocab.size());
    int64_t appended = 0;
    for (AddedToken tok : specials) {
        auto it = vocab.find(tok.content);
        tok.id = it != vocab.end() ? it->second : next_id + appended++;
        vocab[tok.content] = tok.id;
        decoder[tok.id] = tok;
    }
    t.vocab_size_ = int64_t(vocab.size());

    for (auto & [id, tok] : decoder) {
        auto [it, fresh] = t.encoder_.emplace(tok.content, id);
        VLLM_CHECK(fresh, root, ": added token \"", tok.content, "\" has two ids, ", it->second, " and ", id);
    }
    for (const AddedToken & s : specials) {
        t.special_tokens_.insert(s.content);
        t.special_ids_.insert(t.encoder_.at(s.content));
    }
    for (auto & [id, tok] : decoder) tok.special = t.special_tokens_.count(tok.content) != 0;
    t.decoder_ = std::move(decoder);
    // _decode's "legacy_added_tokens": added tokens that are not special, and additional special tokens beyond
    // the SentencePiece vocabulary; they stand apart in decode(), joined by spaces
    for (const auto & [content, id] : t.encoder_)
        if (!t.special_tokens_.count(content)) t.stand_apart_.insert(content);
    for (const std::string & s : additional_names)
        if (t.token_to_id(s) >= t.sp_size_) t.stand_apart_.insert(s);

    for (const std::string & probe : {eos, bos, t.unk_})
        if (t.probe_id_ < 0 && t.special_tokens_.count(probe) && !t.stand_apart_.count(probe))
            t.probe_id_ = t.encoder_.at(probe);
    t.bos_id_ = bos.empty() ? -1 : t.encoder_.at(bos);
    t.eos_id_ = eos.empty() ? -1 : t.encoder_.at(eos);
    t.unk_id_ = t.token_to_id(t.unk_);
    t.add_bos_ = flag("add_bos_token", true);
    t.add_eos_ = flag("add_eos_token", false);
    t.clean_up_spaces_ = flag("clean_up_tokenization_spaces", false);
    t.split_special_ = flag("split_special_tokens", false);
    std::vector<std::string> unk_pieces;
    t.sp_->Encode(t.unk_, &unk_pieces);
    t.unk_pieces_ = unk_pieces.size();

    // the Trie over every added token
    t.trie_next_.assign(1, {});
    t.trie_end_.assign(1, false);
    for (const auto & [content, id] : t.encoder_) {
        int node = 0;
        for (uint32_t c : code_points(content).cp) {
            auto it = t.trie_next_[size_t(node)].find(c);
            if (it == t.trie_next_[size_t(node)].end()) {
                t.trie_next_.emplace_back();
                t.trie_end_.push_back(false);
                it = t.trie_next_[size_t(node)].emplace(c, int(t.trie_next_.size() - 1)).first;
            }
            node = it->second;
        }
        t.trie_end_[size_t(node)] = true;
    }
    return t;
}

std::vector<AddedToken> Tokenizer::added_tokens() const {
    std::vector<AddedToken> out;
    for (const auto & [id, tok] : decoder_) out.push_back(tok);
    return out;
}

int64_t Tokenizer::token_to_id(const std::string & token) const {
    auto it = encoder_.find(token);
    if (it != encoder_.end()) return it->second;
    const int id = sp_->PieceToId(token);
    if (id == sp_->unk_id() && sp_->IdToPiece(id) != token) return -1;
    return id;
}

std::string Tokenizer::piece_of(int64_t id) const {
    auto it = decoder_.find(id);
    if (it != decoder_.end()) return it->second.content;
    VLLM_CHECK(id >= 0 && id < sp_size_, "token id ", id, " is out of range: the tokenizer has ", vocab_size_,
               " tokens (", source_, ")");
    return sp_->IdToPiece(int(id));
}

std::string Tokenizer::id_to_piece(int64_t id) const { return piece_of(id); }

// Trie.split: the byte ranges of the pieces `text` is cut into around added tokens. A port, quirks
// included: a match is taken when it ends, extended by a lookahead that may let an earlier partial
// match win (and then resumes one character too late when that partial match had already failed).
std::vector<std::pair<size_t, size_t>> Tokenizer::trie_split(const std::string & text) const {
    const CodePoints t = code_points(text);
    const size_t n = t.cp.size();
    auto child = [&](int node, size_t at) -> int {
        if (at >= n) return -1;
        auto it = trie_next_[size_t(node)].find(t.cp[at]);
        return it == trie_next_[size_t(node)].end() ? -1 : it->second;
    };
    std::vector<std::pair<size_t, int>> states;  // start -> node, by start
    std::vector<size_t> offsets{0};
    size_t skip = 0;
    for (size_t current = 0; current < n; ++current) {
        if (skip && current < skip) continue;
        std::vector<size_t> to_remove;
        bool reset = false;
        for (auto & state : states) {
            size_t start = state.first;
            if (trie_end_[size_t(state.second)]) {
                size_t end = current;
                for (const auto & look : states) {
                    const size_t lookstart = look.first;
                    int node = look.second;
                    if (lookstart > start) break;
                    // an earlier start has already consumed `current` (or failed on it)
                    size_t ahead = lookstart < start ? current + 1 : current;
                    end = ahead;
                    if (trie_end_[size_t(node)]) start = lookstart, end = ahead, skip = ahead;
                    for (int next = child(node, ahead); next >= 0; next = child(node, ahead)) {
                        node = next;
                        ++ahead;
                        if (trie_end_[size_t(node)]) start = lookstart, end = ahead, skip = ahead;
                    }
                }
                offsets.push_back(start);
                offsets.push_back(end);
                reset = true;
                break;
            }
            const int next = child(state.second, current);
            if (next >= 0)
                state.second = next;
            else
                to_remove.push_back(start);
        }
        if (reset) {
            states.clear();
        } else if (!to_remove.empty()) {
            states.erase(std::remove_if(states.begin(), states.end(),
                                        [&](const std::pair<size_t, int> & s) {
                                            return std::find(to_remove.begin(), to_remove.end(), s.first) !=
                                                   to_remove.end();
                                        }),
                         states.end());
        }
        if (current >= skip) {
            const int first = child(0, current);
            if (first >= 0) states.emplace_back(current, first);
        }
    }
    for (const auto & [start, node] : states) {
        if (trie_end_[size_t(node)]) {
            offsets.push_back(start);
            offsets.push_back(n);
            break;
        }
    }
    // cut_text: offsets that go backwards are dropped, empty cuts skipped
    offsets.push_back(n);
    std::vector<std::pair<size_t, size_t>> cuts;
    size_t start = 0;
    for (size_t end : offsets) {
        if (start >= end) continue;
        cuts.emplace_back(t.at[start], t.at[end]);
        start = end;
    }
    return cuts;
}

// LlamaTokenizer._tokenize: one chunk without added tokens
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

// PreTrainedTokenizer.tokenize: split on added tokens, let them strip the whitespace next to them (or
// glue a single_word token to a neighbouring word), tokenize the rest
std::vector<std::string> Tokenizer::split_and_tokenize(const std::string & text) const {
    std::vector<std::string> chunks;
    if (split_special_) {
        chunks.push_back(text);
    } else {
        for (const auto & [b, e] : trie_split(text)) chunks.push_back(text.substr(b, e - b));
    }
    auto added = [&](const std::string & s) -> const AddedToken * {
        if (split_special_) return nullptr;
        auto it = encoder_.find(s);
        return it == encoder_.end() ? nullptr : &decoder_.at(it->second);
    };
    for (size_t i = 0; i < chunks.size(); ++i) {
        const std::string token = chunks[i];
        const AddedToken * a = added(token);
        if (!a) continue;
        // the neighbours as they were before this token stripped them
        const std::string left = i > 0 ? chunks[i - 1] : "", right = i + 1 < chunks.size() ? chunks[i + 1] : "";
        if (a->rstrip && !right.empty()) chunks[i + 1] = py_lstrip(right);
        if (a->lstrip && !left.empty()) chunks[i - 1] = py_rstrip(left);
        if (a->single_word && !left.empty() && left.back() != ' ') {
            chunks[i - 1] += token;
            chunks[i].clear();
        } else if (a->single_word && !right.empty() && right.front() != ' ') {
            chunks[i + 1] = token + chunks[i + 1];
            chunks[i].clear();
        }
    }
    std::vector<std::string> out;
    for (const std::string & c : chunks) {
        if (c.empty()) continue;
        if (added(c)) {
            out.push_back(c);
        } else {
            std::vector<std::string> p = sp_tokenize(c);
            out.insert(out.end(), p.begin(), p.end());
        }
    }
    return out;
}

// LlamaTokenizer.tokenize: without legacy, a "▁" goes in front (and every "▁" of the text becomes a space),
// dropped again when a special token follows it
std::vector<std::string> Tokenizer::tokenize(const std::string & text) const {
    if (legacy_ || text.empty()) return split_and_tokenize(text);
    std::vector<std::string> t = split_and_tokenize(k_underline + replace_all(text, k_underline, " "));
    if (t.size() > 1 && t[0] == k_underline && special_tokens_.count(t[1])) t.erase(t.begin());
    return t;
}

std::vector<int64_t> Tokenizer::encode(const std::string & text) const { return encode(text, add_bos_, add_eos_); }

std::vector<int64_t> Tokenizer::encode(const std::string & text, bool add_bos, bool add_eos) const {
    std::vector<int64_t> ids;
    if (add_bos) {
        VLLM_CHECK(bos_id_ >= 0, source_, ": a BOS token is to be added but the tokenizer has no bos_token");
        ids.push_back(bos_id_);
    }
    for (const std::string & p : tokenize(text)) {
        auto it = encoder_.find(p);
        ids.push_back(it != encoder_.end() ? it->second : int64_t(sp_->PieceToId(p)));
    }
    if (add_eos) {
        VLLM_CHECK(eos_id_ >= 0, source_, ": an EOS token is to be added but the tokenizer has no eos_token");
        ids.push_back(eos_id_);
    }
    return ids;
}

// LlamaTokenizer.convert_tokens_to_string: special tokens are not passed through SentencePiece
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

// PreTrainedTokenizer._decode (spaces_between_special_tokens is always true there in 4.34: decode() never
// passes the configured value on)
std::string Tokenizer::decode(const std::vector<int64_t> & ids, bool skip_special_tokens) const {
    std::vector<std::string> sub_texts, current;
    for (int64_t id : ids) {
        const std::string tok = piece_of(id);  // checks the range
        if (skip_special_tokens && special_ids_.count(id)) continue;
        if (stand_apart_.count(tok)) {
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

// with clean_up_tokenization_spaces: the length of the longest tail of s that begins one of the clean-up
// patterns without completing it (" " of " .", " '" of " 's", ...): the next ids may still rewrite it
size_t cleanup_tail(const std::string & s) {
    static const char * const patterns[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " 's", " 've", " 're"};
    size_t hold = 0;
    for (const char * p : patterns) {
        const std::string pat = p;
        for (size_t len = pat.size() - 1; len > hold; --len)
            if (s.size() >= len && s.compare(s.size() - len, len, pat, 0, len) == 0) {
                hold = len;
                break;
            }
    }
    return hold;
}
}  // namespace

bool Tokenizer::stream_anchor(int64_t id) const {
    if (decoder_.count(id) || id < 0 || id >= sp_size_) return false;
    const int i = int(id);
    if (sp_->IsUnknown(i) || sp_->IsControl(i) || sp_->IsUnused(i) || sp_->IsByte(i)) return false;
    const std::string piece = sp_->IdToPiece(i);
    return replace_all(piece, k_underline, "").size() > 0;
}

// Decoding is local except at the start: SentencePiece and convert_tokens_to_string drop the leading space
// of the first piece (and of following pieces while the output is still empty). So the text after a window
// that starts at an anchor piece (not an added token, not a byte, with a visible character) is the text that
// decode(all ids) has after it, provided the anchor itself was already given out: the anchor's own surface is
// the same in both window decodes and drops out of the difference. Cases the window cannot see (the space
// legacy puts before a special token, clean-up rules that span the window's start) take the full decode.
std::string StreamDecoder::push(int64_t id) {
    ids_.push_back(id);
    const bool windowed = !tok_.clean_up_spaces() && (skip_special_ || !tok_.legacy());
    if (windowed) {
        const std::string text = tok_.decode(std::vector<int64_t>(ids_.begin() + int64_t(window_), ids_.end()),
                                             skip_special_);
        if (ends_incomplete(text) || text.size() <= window_text_.size() ||
            text.compare(0, window_text_.size(), window_text_) != 0)
            return "";
        std::string out = text.substr(window_text_.size());
        printed_ += out.size();
        window_text_ = text;
        // move the window up to the newest anchor: everything from it is given out now
        for (size_t j = ids_.size(); j-- > window_;) {
            if (!tok_.stream_anchor(ids_[j])) continue;
            if (j != window_) {
                window_ = j;
                window_text_ = tok_.decode(std::vector<int64_t>(ids_.begin() + int64_t(j), ids_.end()), skip_special_);
            }
            break;
        }
        return out;
    }
    const std::string text = tok_.decode(ids_, skip_special_);
    if (ends_incomplete(text)) return "";
    size_t ready = text.size();
    if (!skip_special_ && tok_.legacy() && tok_.probe_id_ >= 0) {
        // what stays the same when a special token follows is final
        ids_.push_back(tok_.probe_id_);
        const std::string probe = tok_.decode(ids_, false);
        ids_.pop_back();
        ready = std::mismatch(text.begin(), text.end(), probe.begin(), probe.end()).first - text.begin();
        while (ready > 0 && ready < text.size() && (static_cast<unsigned char>(text[ready]) & 0xC0) == 0x80) --ready;
    }
    if (tok_.clean_up_spaces()) ready = std::min(ready, text.size() - cleanup_tail(text));
    if (ready <= printed_) return "";
    std::string out = text.substr(printed_, ready - printed_);
    printed_ = ready;
    return out;
}

std::string StreamDecoder::flush() {
    const std::string text = tok_.decode(ids_, skip_special_);
    std::string out = text.size() > printed_ ? text.substr(printed_) : "";
    printed_ = text.size();
    return out;
}

}  // namespace visionllm::text
