// The "<tool> <subcommand> [options]" frame shared by visionllm, visionllm-bench
// and visionllm-eval: usage, --help, --version, dispatch, and errors reported
// as "<tool> <subcommand>: error: <message>" with exit code 1.
#pragma once

#include <vector>

namespace visionllm::cli {

struct Subcommand {
    const char * name;
    const char * summary;
    int (*run)(int argc, char ** argv);  // argv after the subcommand name
};

int run_subcommands(const char * tool, const char * title, const std::vector<Subcommand> & commands, int argc,
                    char ** argv);

}  // namespace visionllm::cli
