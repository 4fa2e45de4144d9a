// The LLaMA tokenizer as transformers 4.34's slow LlamaTokenizer runs it:
// a SentencePiece model plus the added tokens of the checkpoint
// (added_tokens.json, tokenizer_config.json's added_tokens_decoder,
// special_tokens_map.json; ids are read, never assumed), with the `legacy`
// flag, lstrip/rstrip of added tokens, BOS/EOS, byte fallback, and decode()'s
// spacing rules. StreamDecoder turns ids into text as they are generated
// without ever cutting a UTF-8 character.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace visionllm::text {

struct AddedToken {
    std::string content;
    int64_t id = -1;
    bool lstrip = false, rstrip = false, special = true;
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

    int64_t vocab_size() const;  // len(tokenizer): SentencePiece pieces + added tokens
    int64_t bos_id() const { return bos_id_; }
    int64_t eos_id() const { return eos_id_; }
    int64_t unk_id() const { return unk_id_; }
    bool legacy() const { return legacy_; }
    bool add_bos() const { return add_bos_; }
    // the id of a piece or added token, -1 when the vocabulary has no such token
    int64_t token_to_id(const std::string & token) const;
    std::string id_to_piece(int64_t id) const;
    // one of all_special_ids (bos, eos, unk, pad and the additional special tokens)
    bool is_special(int64_t id) const { return special_ids_.count(id) != 0; }
    const std::vector<AddedToken> & added_tokens() const { return added_; }
    const std::string & source() const { return source_; }

private:
    Tokenizer();
    std::vector<std::string> split_and_tokenize(const std::string & text) const;
    std::vector<std::string> sp_tokenize(const std::string & chunk) const;
    std::string tokens_to_string(std::vector<std::string> tokens) const;
    std::string piece_of(int64_t id) const;

    std::string source_;
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    int64_t sp_size_ = 0;
    bool legacy_ = true, add_bos_ = true, add_eos_ = false, clean_up_spaces_ = false;
    std::string bos_ = "<s>", eos_ = "</s>", unk_ = "<unk>";
    int64_t bos_id_ = 1, eos_id_ = 2, unk_id_ = 0;
    size_t unk_pieces_ = 0;  // len(sp.encode(unk_token)): what _tokenize strips in the non-legacy path
    std::vector<AddedToken> added_;                   // by id
    std::map<std::string, size_t> added_by_content_;  // index into added_
    std::map<int64_t, size_t> added_by_id_;
    std::set<std::string> special_tokens_;  // all_special_tokens
    std::set<int64_t> special_ids_;         // all_special_ids
};

// incremental detokenisation for streaming: push() returns the text that is
// new and complete; the concatenation of every push() and flush() is
// decode(ids, skip_special_tokens)
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
    size_t printed_ = 0;
};

}  // namespace visionllm::text
