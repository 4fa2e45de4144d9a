#include <cstdio>

#include "cli/commands.h"
#include "common/args.h"
#include "visionllm/inspect.h"

namespace visionllm::cli {

int cmd_inspect(int argc, char ** argv) {
    Args a("visionllm inspect -m DIR [--json] [--verbose]",
           "Lists the model's components with tensor and parameter counts, sizes and dtypes,\n"
           "and compares the checkpoint's keys with what each component expects.\n"
           "Exits 0 when every key is as expected, 3 when some are missing, unexpected or misshapen.");
    a.add("-m,--model", "DIR", "model directory (config.json + weights)");
    a.add_switch("--json", "print the report as JSON");
    a.add_switch("--verbose", "list every key at fault, not the first 20");
    if (!a.parse(argc, argv)) return 0;
    InspectResult r = inspect_model(a.require("--model"));
    const std::string out = a.on("--json") ? inspect_to_json(r) + "\n" : inspect_to_text(r, a.on("--verbose"));
    std::fputs(out.c_str(), stdout);
    return r.ok() ? 0 : 3;
}

}  // namespace visionllm::cli
