// What a model directory should hold, component by component: the names and
// shapes each ported module binds. inspect and make-tiny both read it.
#pragma once

#include <string>
#include <vector>

#include "visionllm/checkpoint.h"
#include "visionllm/config.h"

namespace visionllm::engine {

struct ComponentLayout {
    std::string name;    // "llm", "vis_encoder", ...
    std::string prefix;  // "llm.", ...
    std::vector<ExpectedTensor> tensors;  // relative to prefix
    bool checked = true;  // false: no port yet, so its keys are listed but not checked
};

std::vector<ComponentLayout> model_layout(const ModelConfig & m);

}  // namespace visionllm::engine
