// Device policy: decided once, from --device, at load.
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

namespace visionllm {

// "auto" (cuda when a GPU is usable, else cpu), "cpu", "cuda" or "cuda:N".
// Throws naming the argument when cuda is asked for and none is usable.
c10::Device resolve_device(const std::string & spec, const std::string & what = "--device");

// a compute dtype: "auto" (or "": Undefined, the caller's default), "f32", "bf16", "f16" and their long
// spellings; throws naming `what` (e.g. "--dtype") otherwise
at::ScalarType parse_compute_dtype(const std::string & spec, const std::string & what = "--dtype");

bool cuda_usable();
int cuda_device_count();
// one line on what this build and machine offer: torch version, CUDA build, GPUs
std::string device_summary();

}  // namespace visionllm
