// The LLaMA tokenizer as transformers 4.34's slow LlamaTokenizer runs it: a
// SentencePiece model plus the added tokens of the checkpoint, with the `legacy`
// flag, lstrip/rstrip/single_word of added tokens, BOS/EOS, byte fallback and
// decode()'s spacing rules. Loading follows from_pretrained's two paths: files
// saved by 4.34+ (tokenizer_config.json's added_tokens_decoder is the truth;
// added_tokens.json and special_tokens_map.json are then ignored) and older files
// (special_tokens_map.json overrides tokenizer_config.json; added_tokens.json's
// tokens strip the whitespace around them). Ids are read, never assumed.
// StreamDecoder turns ids into text as they are generated without ever cutting a
// UTF-8 character.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace visionllm::text {

struct AddedToken {
    std::string content;
    int64_t id = -1;
    bool lstrip = false, rstrip = false, single_word = false;
    bool special = false;  // one of all_special_tokens
};

class Tokenizer {
public:
    // `path`: a directory holding tokenizer.model (and the JSON files), or a tokenizer.model file
    static Tokenizer load(const std::string & path);
    Tokenizer(Tokenizer &&) noexcept;
    Tokenizer & operator=(Tokenizer &&) noexcept;
    ~Tokenizer();

    // tokenizer(text).input_ids: BOS/EOS as the config says (add_bos_token, add_eos_token)
    std::vector<int64_t> encode(const std::string & text) const;
    std::vector<int64_t> encode(const std::string & text, bool add_bos, bool add_eos = false) const;
    // tokenizer.tokenize(text)
    std::vector<std::string> tokenize(const std::string & text) const;
    // tokenizer.decode(ids[, skip_special_tokens=True]); throws naming an id out of range
    std::string decode(const std::vector<int64_t> & ids, bool skip_special_tokens = false) const;

    int64_t vocab_size() const { return vocab_size_; }  // len(tokenizer): pieces + added tokens
    int64_t bos_id() const { return bos_id_; }           // -1 when the tokenizer has none
    int64_t eos_id() const { return eos_id_; }
    int64_t unk_id() const { return unk_id_; }
    bool legacy() const { return legacy_; }
    bool add_bos() const { return add_bos_; }
    bool add_eos() const { return add_eos_; }
    bool clean_up_spaces() const { return clean_up_spaces_; }
    // the id of an added token or piece, -1 when the vocabulary has no such token
    int64_t token_to_id(const std::string & token) const;
    // the added token's content or the SentencePiece piece; throws when out of range
    std::string id_to_piece(int64_t id) const;
    // one of all_special_ids (bos, eos, unk, pad, ... and the additional special tokens)
    bool is_special(int64_t id) const { return special_ids_.count(id) != 0; }
    // by id
    std::vector<AddedToken> added_tokens() const;
    const std::string & source() const { return source_; }

private:
    Tokenizer();
    std::vector<std::string> split_and_tokenize(const std::string & text) const;
    std::vector<std::string> sp_tokenize(const std::string & chunk) const;
    std::string tokens_to_string(std::vector<std::string> tokens) const;
    std::string piece_of(int64_t id) const;
    std::vector<std::pair<size_t, size_t>> trie_split(const std::string & text) const;

    std::string source_;
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    int64_t sp_size_ = 0, vocab_size_ = 0;
    bool legacy_ = true, add_bos_ = true, add_eos_ = false, clean_up_spaces_ = false, split_special_ = false;
    std::string unk_ = "<unk>";
    int64_t bos_id_ = -1, eos_id_ = -1, unk_id_ = -1;
    size_t unk_pieces_ = 0;  // len(sp.encode(unk_token)): what _tokenize strips in the non-legacy path
    std::map<int64_t, AddedToken> decoder_;               // _added_tokens_decoder
    std::unordered_map<std::string, int64_t> encoder_;    // _added_tokens_encoder
    std::set<std::string> special_tokens_;                // all_special_tokens
    std::set<int64_t> special_ids_;                       // all_special_ids
    std::set<std::string> stand_apart_;                   // _decode's legacy_added_tokens
    // transformers' Trie over the added tokens, on code points: children per node, and whether a token ends there
    std::vector<std::map<uint32_t, int>> trie_next_;
    std::vector<bool> trie_end_;
    // a special token decoded in line (not standing apart), -1 if none: StreamDecoder appends it to see
    // which text a later special token would still change
    int64_t probe_id_ = -1;
    // a plain piece with a visible character: decoding may start at it (see StreamDecoder::push)
    bool stream_anchor(int64_t id) const;
    friend class StreamDecoder;
};

// incremental detokenisation for streaming: push() returns the text that is new
// and final; the concatenation of every push() and flush() is
// decode(ids, skip_special_tokens). Text that later ids could still change is
// held back: an incomplete UTF-8 character (byte-fallback pieces); with
// clean_up_tokenization_spaces a tail such as " " or " n" that a clean-up rule
// may rewrite; and with legacy=true and skip_special_tokens=false the text since
// the last special token, in front of which transformers puts a space once the
// next special token (typically EOS) arrives.
// push() decodes only the ids since the last anchor piece, so streaming costs
// O(1) per token; with clean-up or legacy=true without skipping special tokens
// it decodes all ids each time (O(n) per token; neither is VisionLLMv2's setting
// for generation).
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer & tok, bool skip_special_tokens = true)
        : tok_(tok), skip_special_(skip_special_tokens) {}
    std::string push(int64_t id);
    std::string flush();

private:
    const Tokenizer & tok_;
    bool skip_special_;
    std::vector<int64_t> ids_;
    size_t printed_ = 0;      // bytes of decode(ids_) given out
    size_t window_ = 0;       // decoding starts at ids_[window_], an anchor piece already given out
    std::string window_text_; // decode of ids_[window_:] as far as it was given out
};

}  // namespace visionllm::text
