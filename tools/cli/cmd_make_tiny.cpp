#include <cstdio>
#include <sstream>

#include "cli/commands.h"
#include "common/args.h"
#include "visionllm/error.h"
#include "visionllm/make_tiny.h"

namespace visionllm::cli {

int cmd_make_tiny(int argc, char ** argv) {
    Args a("visionllm make-tiny -o DIR [--components LIST] [--preset tiny|7b] [--dtype T] [--format F]",
           "Writes a random-weight checkpoint in the official VisionLLMv2 key layout and file format:\n"
           "config.json (nested), tokenizer.model + added tokens, and .bin shards with their index.");
    a.add("-o,--output", "DIR", "output directory (created if needed)");
    a.add("--components", "LIST", "comma-separated: llm,vision,region,gdino (unipose,sd,ip2p come with their ports)",
          "llm,vision,region");
    a.add("--arch", "NAME", "visionllmv2; llama for a plain LlamaForCausalLM directory; clip for a CLIPVisionModel one", "visionllmv2");
    a.add("--preset", "NAME", "tiny, or 7b for the released model's full shapes", "tiny");
    a.add("--dtype", "T", "weight dtype: bf16, f16 or f32", "bf16");
    a.add("--format", "F", "bin (torch.save shards) or safetensors", "bin");
    a.add("--shards", "N", "number of weight files", "2");
    a.add("--seed", "S", "random seed", "0");
    a.add_switch("--quiet", "no progress output");
    if (!a.parse(argc, argv)) return 0;

    MakeTinyOptions o;
    o.out_dir = a.require("--output");
    o.arch = a.get("--arch");
    o.preset = a.get("--preset");
    o.dtype = dtype_from_name(a.get("--dtype"), "--dtype");
    o.format = a.get("--format");
    o.shards = int(a.get_int("--shards"));
    o.seed = uint64_t(a.get_int("--seed"));
    o.progress = !a.on("--quiet");
    o.components.clear();
    std::stringstream ss(a.get("--components"));
    for (std::string c; std::getline(ss, c, ',');) {
        if (!c.empty()) o.components.push_back(c);
    }
    if (o.arch == "llama" && !a.has("--components")) o.components = {"llm"};
    if (o.arch == "clip" && !a.has("--components")) o.components = {"vision"};
    make_tiny(o);
    if (!a.on("--quiet")) std::fprintf(stderr, "make-tiny: wrote %s\n", o.out_dir.c_str());
    return 0;
}

}  // namespace visionllm::cli
