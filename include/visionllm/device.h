// Device policy: decided once, from --device, at load.
#pragma once

#include <c10/core/Device.h>

#include <string>

namespace visionllm {

// "auto" (cuda when a GPU is usable, else cpu), "cpu", "cuda" or "cuda:N".
// Throws naming the argument when cuda is asked for and none is usable.
c10::Device resolve_device(const std::string & spec, const std::string & what = "--device");

bool cuda_usable();
int cuda_device_count();
// one line on what this build and machine offer: torch version, CUDA build, GPUs
std::string device_summary();

}  // namespace visionllm
