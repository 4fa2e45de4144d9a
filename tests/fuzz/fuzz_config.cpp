// config.json parsing: any text is a config or a visionllm::Error.
#include <cstddef>
#include <cstdint>
#include <string>

#include "visionllm/config.h"
#include "visionllm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    try {
        visionllm::ModelConfig m =
            visionllm::parse_model_config(std::string(reinterpret_cast<const char *>(data), size), "fuzz/config.json");
        if (m.kind == visionllm::ModelKind::VisionLLMv2) visionllm::to_config_json(m.vllm);
    } catch (const visionllm::Error &) {
    }
    return 0;
}
