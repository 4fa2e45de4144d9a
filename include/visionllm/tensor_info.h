// Where one tensor of a checkpoint lives: dtype, shape, strides and the byte
// offset of its first element inside its (memory-mapped) file. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "visionllm/dtype.h"

namespace visionllm {

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    std::vector<int64_t> strides;  // in elements, as torch has them
    uint64_t data_offset = 0;      // byte offset of element 0 in the file
    int file = 0;                  // index into the checkpoint's file list

    int64_t numel() const;
    uint64_t nbytes() const { return uint64_t(numel()) * dtype_size(dtype); }
    bool is_contiguous() const;
};

// "[4096, 11008]"
std::string shape_str(const std::vector<int64_t> & shape);

}  // namespace visionllm
