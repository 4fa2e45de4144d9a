// Element types as stored in checkpoints. Torch-free so that the parsers
// (and their fuzz targets) build without LibTorch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace visionllm {

enum class DType : uint8_t { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool, F8E4M3, F8E5M2 };

size_t dtype_size(DType dt);
// canonical lowercase name: "bf16", "f32", "i64", "bool", ...
const char * dtype_name(DType dt);
// parses our names and the common aliases ("bfloat16", "float32", "fp16", ...); throws naming `what`
DType dtype_from_name(const std::string & name, const std::string & what);
// safetensors header names: "BF16", "F32", "I64", "BOOL", ...
bool dtype_from_safetensors(const std::string & name, DType & out);
const char * dtype_safetensors_name(DType dt);
// torch storage class names: "BFloat16Storage", "FloatStorage", ...
bool dtype_from_torch_storage(const std::string & name, DType & out);
const char * dtype_torch_storage_name(DType dt);

}  // namespace visionllm
