// visionllm: the command-line face of libvisionllm.
#include "cli/commands.h"
#include "common/subcommands.h"

int main(int argc, char ** argv) {
    using namespace visionllm::cli;
    return run_subcommands(
        "visionllm", "VisionLLM v2 inference engine",
        {
            {"chat", "ask about an image, with boxes, points or masks as regions; multi-turn with -i", cmd_chat},
            {"detect", "find objects (boxes, masks) by class names, a phrase or a free-form request", cmd_detect},
            {"run", "generate text with the language model (chat template, sampling, streaming)", cmd_run},
            {"tokenize", "print the token ids of a text", cmd_tokenize},
            {"inspect", "list a model's components, parameter counts and dtypes, and check its keys", cmd_inspect},
            {"make-tiny", "write a random-weight checkpoint in the official layout (tests, demos, benchmarks)",
             cmd_make_tiny},
            {"info", "show the build, the devices and the device --device would pick", cmd_info},
        },
        argc, argv);
}
