// Parsers of the two checkpoint formats. Each takes the file's bytes and
// returns where every tensor lives; nothing is copied. `what` names the file
// in error messages.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "visionllm/tensor_info.h"

namespace visionllm::io {

// torch.save zip archives (pytorch_model*.bin)
std::vector<TensorInfo> parse_torch_zip(const uint8_t * data, size_t size, const std::string & what);

// safetensors; `metadata` receives the optional "__metadata__" strings
std::vector<TensorInfo> parse_safetensors(const uint8_t * data, size_t size, const std::string & what,
                                          std::map<std::string, std::string> * metadata = nullptr);

// checks that a view (offset, shape, strides in elements) fits a storage of
// `storage_numel` elements; throws naming the tensor otherwise
void check_view_bounds(const TensorInfo & t, int64_t storage_offset, int64_t storage_numel, const std::string & what);

}  // namespace visionllm::io
