#include "superlink/splice.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "visionllm/error.h"

namespace visionllm::superlink {

namespace {
constexpr const char * k_image = "<image>";
constexpr const char * k_im_patch = "<im_patch>";
}  // namespace

std::vector<int64_t> tokenize_with_image(const text::Tokenizer & tok, const std::string & prompt,
                                         int64_t image_tokens) {
    std::vector<std::string> chunks;
    for (size_t at = 0;;) {
        const size_t next = prompt.find(k_image, at);
        chunks.push_back(prompt.substr(at, next == std::string::npos ? std::string::npos : next - at));
        if (next == std::string::npos) break;
        at = next + std::string(k_image).size();
    }
    VLLM_CHECK(chunks.size() <= 2, "the prompt holds ", chunks.size() - 1,
               " \"<image>\" placeholders; one image per conversation is supported");
    if (chunks.size() == 1) return tok.encode(prompt);
    VLLM_CHECK(image_tokens > 0, "the prompt holds \"<image>\" but no image was given");

    // tokenizer(chunk).input_ids per chunk; an empty chunk stands for [BOS]
    std::vector<std::vector<int64_t>> ids;
    for (const auto & c : chunks) ids.push_back(c.empty() ? std::vector<int64_t>{tok.bos_id()} : tok.encode(c));
    std::vector<int64_t> out;
    size_t offset = 0;
    if (!ids[0].empty() && ids[0][0] == tok.bos_id()) {
        offset = 1;
        out.push_back(ids[0][0]);
    }
    // the <im_patch> run: tokenizer("<im_patch>" * n).input_ids[1:]
    std::string patches;
    patches.reserve(size_t(image_tokens) * std::string(k_im_patch).size());
    for (int64_t i = 0; i < image_tokens; ++i) patches += k_im_patch;
    std::vector<int64_t> run = tok.encode(patches);
    VLLM_CHECK(!run.empty(), "tokenizer: \"<im_patch>\" encodes to nothing");
    run.erase(run.begin());
    for (size_t k = 0; k < ids.size(); ++k) {
        if (k > 0) out.insert(out.end(), run.begin(), run.end());
        if (ids[k].size() > offset) out.insert(out.end(), ids[k].begin() + int64_t(offset), ids[k].end());
    }
    return out;
}

int64_t count_id(const std::vector<int64_t> & ids, int64_t token_id) {
    return int64_t(std::count(ids.begin(), ids.end(), token_id));
}

void splice_rows(at::Tensor & embeds, const std::vector<int64_t> & ids, int64_t token_id, const at::Tensor & rows,
                 const std::string & what) {
    at::Tensor e = embeds.dim() == 3 ? embeds.select(0, 0) : embeds;
    VLLM_CHECK(e.dim() == 2 && e.size(0) == int64_t(ids.size()), "splice: embeddings ", embeds.sizes(),
               " do not match ", ids.size(), " ids");
    std::vector<int64_t> pos;
    for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] == token_id) pos.push_back(int64_t(i));
    const int64_t n = rows.defined() ? rows.size(0) : 0;
    VLLM_CHECK(int64_t(pos.size()) == n, "the prompt has ", pos.size(), " ", what, " token", pos.size() == 1 ? "" : "s",
               " but ", n, " ", what, " embedding", n == 1 ? " was" : "s were", " computed");
    if (n == 0) return;
    VLLM_CHECK(rows.dim() == 2 && rows.size(1) == e.size(1), "splice: ", what, " rows ", rows.sizes(),
               " do not match the hidden size ", e.size(1));
    at::Tensor index = at::tensor(pos, at::kLong).to(e.device());
    e.index_copy_(0, index, rows.to(e.device(), e.scalar_type()));
}

}  // namespace visionllm::superlink
