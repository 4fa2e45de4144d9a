#include "common/subcommands.h"

#include <cstdio>
#include <exception>
#include <string>

#include "visionllm/error.h"
#include "visionllm/version.h"

namespace visionllm::cli {

namespace {
void usage(FILE * out, const char * tool, const char * title, const std::vector<Subcommand> & commands) {
    std::fprintf(out, "usage: %s <command> [options]\n\n%s (visionllm %s)\n\ncommands:\n", tool, title,
                 VISIONLLM_VERSION);
    for (const auto & c : commands) std::fprintf(out, "  %-12s %s\n", c.name, c.summary);
    std::fprintf(out,
                 "\nglobal options:\n"
                 "  -h, --help   show this help (or a command's, after its name)\n"
                 "  --version    print the version\n");
}
}  // namespace

int run_subcommands(const char * tool, const char * title, const std::vector<Subcommand> & commands, int argc,
                    char ** argv) {
    if (argc < 2) {
        usage(stderr, tool, title, commands);
        return 1;
    }
    const std::string cmd = argv[1];
    if (cmd == "-h" || cmd == "--help" || cmd == "help") {
        usage(stdout, tool, title, commands);
        return 0;
    }
    if (cmd == "--version" || cmd == "-v") {
        std::printf("%s %s\n", tool, VISIONLLM_VERSION);
        return 0;
    }
    for (const auto & c : commands) {
        if (cmd != c.name) continue;
        try {
            return c.run(argc - 2, argv + 2);
        } catch (const visionllm::Error & e) {
            std::fprintf(stderr, "%s %s: error: %s\n", tool, c.name, e.what());
            return 1;
        } catch (const std::exception & e) {
            std::fprintf(stderr, "%s %s: internal error: %s\n", tool, c.name, e.what());
            return 2;
        }
    }
    std::fprintf(stderr, "%s: unknown command '%s'\n\n", tool, cmd.c_str());
    usage(stderr, tool, title, commands);
    return 1;
}

}  // namespace visionllm::cli
