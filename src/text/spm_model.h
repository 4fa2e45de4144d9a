// Writes SentencePiece model files (the protobuf ModelProto) without the
// sentencepiece library: make-tiny uses it for a LLaMA-style tokenizer.model.
#pragma once

#include <string>
#include <vector>

namespace visionllm::text {

struct SpmPiece {
    enum Type { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };
    std::string piece;
    float score = 0;
    Type type = Normal;
};

struct SpmModelSpec {
    std::vector<SpmPiece> pieces;
    int model_type = 2;  // 1 unigram, 2 bpe
    bool byte_fallback = true;
    bool split_digits = true;
    bool add_dummy_prefix = true;
    bool remove_extra_whitespaces = false;
    std::string normalizer_name = "identity";
};

// serialized ModelProto
std::string serialize_spm_model(const SpmModelSpec & spec);

// A LLaMA-style BPE vocabulary: <unk> <s> </s>, the 256 byte pieces, single
// characters, and pieces for frequent English words (every prefix of each, so
// BPE merges can reach them). Deterministic.
SpmModelSpec tiny_llama_spm_model();

}  // namespace visionllm::text
