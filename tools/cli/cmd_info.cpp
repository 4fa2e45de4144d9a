#include <cstdio>

#include "cli/commands.h"
#include "common/args.h"
#include "visionllm/device.h"
#include "visionllm/version.h"

namespace visionllm::cli {

int cmd_info(int argc, char ** argv) {
    Args a("visionllm info [--device cpu|cuda]",
           "Prints the version, the build (LibTorch, CUDA kernels) and the devices, then the device\n"
           "that --device resolves to; fails with a clear message when cuda is asked for and absent.");
    a.add("--device", "D", "auto, cpu, cuda or cuda:N", "auto");
    if (!a.parse(argc, argv)) return 0;
    std::printf("visionllm %s\n%s\n", VISIONLLM_VERSION, device_summary().c_str());
    c10::Device d = resolve_device(a.get("--device"));
    std::printf("device: %s\n", d.str().c_str());
    return 0;
}

}  // namespace visionllm::cli
