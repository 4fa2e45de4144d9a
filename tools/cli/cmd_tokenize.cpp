// visionllm tokenize: text -> token ids, as the model will see them.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/args.h"
#include "io/json_file.h"
#include "text/tokenizer.h"
#include "visionllm/error.h"

namespace visionllm::cli {

int cmd_tokenize(int argc, char ** argv) {
    Args a("visionllm tokenize -m DIR -p TEXT [--no-bos] [--pieces] [--json]",
           "Prints the token ids of TEXT as one line of space-separated integers, exactly as\n"
           "transformers' slow LlamaTokenizer (4.34) gives them: added tokens, the legacy flag,\n"
           "BOS (and EOS) as tokenizer_config.json says. DIR needs only tokenizer.model and the\n"
           "tokenizer JSON files. --pieces adds a second line with the pieces, space-separated,\n"
           "one per id (SentencePiece shows a space as U+2581); --json prints both as\n"
           "{\"ids\": [...], \"pieces\": [...]} instead.");
    a.add("-m,--model", "DIR", "directory with tokenizer.model (+ tokenizer_config.json, added_tokens.json, ...)");
    a.add("-p,--prompt", "TEXT", "the text");
    a.add("-f,--file", "FILE", "read the text from FILE (as it is: a final newline is tokenized too)");
    a.add_switch("--no-bos", "do not add the BOS token");
    a.add_switch("--pieces", "also print the pieces, on a second line");
    a.add_switch("--json", "print {\"ids\": [...], \"pieces\": [...]} instead");
    if (!a.parse(argc, argv)) return 0;
    VLLM_CHECK(a.has("--prompt") != a.has("--file"), "give one of -p/--prompt or -f/--file");
    const std::string text = a.has("--prompt") ? a.get("--prompt") : io::read_text_file(a.get("--file"));
    const text::Tokenizer tok = text::Tokenizer::load(a.require("--model"));
    const std::vector<int64_t> ids = tok.encode(text, tok.add_bos() && !a.on("--no-bos"), tok.add_eos());
    std::vector<std::string> pieces;
    for (int64_t id : ids) pieces.push_back(tok.id_to_piece(id));
    if (a.on("--json")) {
        std::printf("%s\n", nlohmann::json{{"ids", ids}, {"pieces", pieces}}.dump().c_str());
        return 0;
    }
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %lld" : "%lld", (long long)ids[i]);
    std::printf("\n");
    if (a.on("--pieces")) {
        for (size_t i = 0; i < pieces.size(); ++i) std::printf(i ? " %s" : "%s", pieces[i].c_str());
        std::printf("\n");
    }
    return 0;
}

}  // namespace visionllm::cli
