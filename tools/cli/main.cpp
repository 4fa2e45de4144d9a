// visionllm: the command-line face of libvisionllm.
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>

#include "cli/commands.h"
#include "visionllm/error.h"
#include "visionllm/version.h"

namespace {

struct Command {
    const char * name;
    const char * summary;
    int (*run)(int, char **);
};

const Command k_commands[] = {
    {"inspect", "list a model's components, parameter counts and dtypes, and check its keys",
     visionllm::cli::cmd_inspect},
    {"make-tiny", "write a random-weight checkpoint in the official layout (tests, demos, benchmarks)",
     visionllm::cli::cmd_make_tiny},
    {"info", "show the build, the devices and the device --device would pick", visionllm::cli::cmd_info},
};

void usage(FILE * out) {
    std::fprintf(out,
                 "usage: visionllm <command> [options]\n\n"
                 "VisionLLM v2 inference engine %s\n\ncommands:\n",
                 VISIONLLM_VERSION);
    for (const auto & c : k_commands) std::fprintf(out, "  %-12s %s\n", c.name, c.summary);
    std::fprintf(out,
                 "\nglobal options:\n"
                 "  -h, --help   show this help (or a command's, after its name)\n"
                 "  --version    print the version\n");
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc < 2) {
        usage(stderr);
        return 1;
    }
    const std::string cmd = argv[1];
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
        usage(stdout);
        return 0;
    }
    if (cmd == "--version" || cmd == "-v") {
        std::printf("visionllm %s\n", VISIONLLM_VERSION);
        return 0;
    }
    for (const auto & c : k_commands) {
        if (cmd != c.name) continue;
        try {
            return c.run(argc - 2, argv + 2);
        } catch (const visionllm::Error & e) {
            std::fprintf(stderr, "visionllm %s: error: %s\n", c.name, e.what());
            return 1;
        } catch (const std::exception & e) {
            std::fprintf(stderr, "visionllm %s: internal error: %s\n", c.name, e.what());
            return 2;
        }
    }
    std::fprintf(stderr, "visionllm: unknown command '%s'\n\n", cmd.c_str());
    usage(stderr);
    return 1;
}
