// What `visionllm inspect` reports about a model directory.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

namespace visionllm {

struct ComponentSummary {
    std::string name, prefix;
    size_t tensors = 0;
    uint64_t params = 0, bytes = 0;
    std::map<std::string, uint64_t> dtype_params;  // "bf16" -> parameter count
    bool checked = true;                           // false: no port yet, keys not checked
    KeyReport report;
};

struct InspectResult {
    std::string path, format;
    ModelKind kind = ModelKind::VisionLLMv2;
    std::vector<std::string> files;
    std::vector<ComponentSummary> components;
    std::vector<std::string> unclaimed;  // tensors under no known component
    uint64_t params = 0, bytes = 0;
    bool ok() const;
};

InspectResult inspect_model(const std::string & dir);
std::string inspect_to_text(const InspectResult & r, bool verbose);
std::string inspect_to_json(const InspectResult & r);

}  // namespace visionllm
