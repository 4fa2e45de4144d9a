// Where non-text inputs enter the LLM's sequence (visionllmv2.md §4.2): the
// prompt is tokenised around its "<image>" the way tokenizer_image_token does,
// the image's place becomes one <im_patch> id per visual token, and after the
// embedding lookup the rows at <im_patch> and <region> ids are overwritten by
// the projected image features and the region-encoder outputs, in order.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace visionllm::superlink {

// tokenizer_image_token(prompt) followed by the reference's expansion of its -200 sentinel into
// tokenizer("<im_patch>" * image_tokens).input_ids[1:]. Every chunk between "<image>"s is tokenised on
// its own (with BOS, which only the first chunk keeps). A prompt without "<image>" is tokenised as is.
// At most one "<image>"; with one, image_tokens must be positive.
std::vector<int64_t> tokenize_with_image(const text::Tokenizer & tok, const std::string & prompt,
                                         int64_t image_tokens);

// embeds [T, hidden] (or [1, T, hidden]): the rows where ids == token_id, in order, become rows of
// `rows` [n, hidden]; the counts must agree (the error names `what`, e.g. "<im_patch>").
void splice_rows(at::Tensor & embeds, const std::vector<int64_t> & ids, int64_t token_id, const at::Tensor & rows,
                 const std::string & what);

// how many times `token_id` occurs in ids
int64_t count_id(const std::vector<int64_t> & ids, int64_t token_id);

}  // namespace visionllm::superlink
