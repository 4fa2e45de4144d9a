#include "visionllm/device.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include <sstream>

#include "visionllm/error.h"

#ifdef VISIONLLM_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace visionllm {

at::ScalarType parse_compute_dtype(const std::string & s, const std::string & what) {
    if (s == "auto" || s.empty()) return at::ScalarType::Undefined;
    if (s == "f32" || s == "fp32" || s == "float32") return at::kFloat;
    if (s == "bf16" || s == "bfloat16") return at::kBFloat16;
    if (s == "f16" || s == "fp16" || s == "float16") return at::kHalf;
    fail(what, ": \"", s, "\" is not one of auto, f32, bf16, f16");
}

int cuda_device_count() {
#ifdef VISIONLLM_WITH_CUDA
    int n = 0;  // cudaGetDeviceCount leaves it untouched on error
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return at::hasCUDA() ? n : 0;
#else
    return 0;
#endif
}

bool cuda_usable() { return cuda_device_count() > 0; }

c10::Device resolve_device(const std::string & spec, const std::string & what) {
    if (spec.empty() || spec == "auto") return cuda_usable() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
    if (spec == "cpu") return c10::Device(c10::kCPU);
    if (spec == "cuda" || spec.rfind("cuda:", 0) == 0) {
        int index = 0;
        if (spec.size() > 5) {
            const std::string n = spec.substr(5);
            if (n.empty() || n.size() > 3 || n.find_first_not_of("0123456789") != std::string::npos)
                fail(what, ": invalid device '", spec, "' (expected cpu, cuda or cuda:N)");
            index = std::stoi(n);
        }
#ifndef VISIONLLM_WITH_CUDA
        fail(what, " ", spec, ": no usable CUDA device (this build of visionllm has no CUDA kernels: nvcc was not "
             "found when it was built); use --device cpu");
#else
        const int count = cuda_device_count();
        if (count == 0) {
            int n = 0;
            cudaError_t e = cudaGetDeviceCount(&n);
            cudaGetLastError();
            fail(what, " ", spec, ": no usable CUDA device (",
                 e != cudaSuccess ? cudaGetErrorString(e) : (at::hasCUDA() ? "0 devices" : "LibTorch has no CUDA"),
                 "); use --device cpu");
        }
        if (index >= count) fail(what, " ", spec, ": only ", count, " CUDA device(s) present");
        return c10::Device(c10::kCUDA, c10::DeviceIndex(index));
#endif
    }
    fail(what, ": invalid device '", spec, "' (expected auto, cpu, cuda or cuda:N)");
}

std::string device_summary() {
    std::ostringstream ss;
    ss << "torch " << TORCH_VERSION << ", CPU threads " << at::get_num_threads();
#ifdef VISIONLLM_WITH_CUDA
    ss << ", CUDA kernels built, CUDA devices " << cuda_device_count();
#else
    ss << ", CUDA kernels not built";
#endif
    return ss.str();
}

}  // namespace visionllm
