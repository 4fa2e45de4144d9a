// visionllm run: text generation with the language model of a VisionLLMv2
// checkpoint or of a Hugging Face Llama directory. The answer streams to
// stdout; load and speed lines go to stderr (llama.cpp's split), so stdout can
// be piped.
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "cli/commands.h"
#include "common/args.h"
#include "common/llm_flags.h"
#include "io/json_file.h"
#include "llm/generate.h"
#include "llm/llama.h"
#include "text/conversation.h"
#include "text/tokenizer.h"
#include "visionllm/device.h"
#include "visionllm/error.h"

namespace visionllm::cli {

namespace {

std::vector<int64_t> parse_ids(const std::string & s) {
    std::vector<int64_t> ids;
    std::string item;
    std::stringstream ss(s);
    while (std::getline(ss, item, ',')) {
        size_t used = 0;
        long long v = 0;
        try {
            v = std::stoll(item, &used);
        } catch (const std::exception &) {
            used = 0;
        }
        if (used == 0 || used != item.size()) fail("--prompt-ids: \"", item, "\" is not an integer (expected 1,2,3)");
        ids.push_back(v);
    }
    VLLM_CHECK(!ids.empty(), "--prompt-ids: no ids given");
    return ids;
}

void print_timings(const llm::GenerateStats & st, double load_s) {
    std::fprintf(stderr,
                 "\nload: %.2f s | prompt: %lld tokens in %.2f s (%.2f tok/s) | generation: %lld tokens in %.2f s "
                 "(%.2f tok/s)\n",
                 load_s, (long long)st.prompt_tokens, st.prompt_seconds, st.prompt_tps(),
                 (long long)st.generated_tokens, st.generate_seconds, st.generate_tps());
}

}  // namespace

int cmd_run(int argc, char ** argv) {
    Args a("visionllm run -m DIR -p TEXT [options]",
           "Generates text with the language model of DIR: a VisionLLMv2 checkpoint (text-only questions)\n"
           "or a Hugging Face LlamaForCausalLM directory (.bin or safetensors). The vicuna_v1 chat\n"
           "template is applied unless --raw. The answer streams to stdout; timings go to stderr.\n"
           "Decoding is greedy by default, as the reference evaluates; --temp > 0 samples.\n"
           "--prompt-ids with --print-ids needs no tokenizer files.");
    a.add("-m,--model", "DIR", "model directory (config.json, weights, tokenizer files)");
    a.add("-p,--prompt", "TEXT", "the question (or, with --raw, the whole prompt)");
    a.add("-f,--file", "FILE", "read the prompt from FILE");
    a.add("--prompt-ids", "IDS", "token ids fed as they are, e.g. 1,2,3 (no template, no BOS added)");
    a.add_switch("--print-ids", "print the generated ids (not the prompt's) as one line of integers on stdout");
    a.add_switch("--raw", "no chat template: the prompt is tokenized as given (with BOS)");
    a.add("--system", "TEXT", "replace the template's system sentence");
    a.add_switch("-i,--interactive", "after the answer, read further questions from stdin (multi-turn)");
    add_sampling_flags(a);
    add_llm_flags(a);
    if (!a.parse(argc, argv)) return 0;

    const std::string dir = a.require("--model");
    const bool print_ids = a.on("--print-ids");
    const bool by_ids = a.has("--prompt-ids");
    VLLM_CHECK(int(a.has("--prompt")) + int(a.has("--file")) + int(by_ids) == 1,
               "give exactly one of -p/--prompt, -f/--file, --prompt-ids");
    VLLM_CHECK(!(by_ids && a.on("--interactive")), "--interactive needs text prompts, not --prompt-ids");

    // the tokenizer is needed unless ids go in and ids come out
    std::unique_ptr<text::Tokenizer> tok;
    if (!(by_ids && print_ids)) tok = std::make_unique<text::Tokenizer>(text::Tokenizer::load(dir));

    const llm::LlamaOptions lo = llm_options(a);
    const auto t0 = std::chrono::steady_clock::now();
    auto model = llm::LlamaForCausalLM::from_pretrained(dir, lo);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (tok)
        VLLM_CHECK(tok->vocab_size() <= model->config().vocab_size, dir, ": the tokenizer has ", tok->vocab_size(),
                   " tokens but the model's embedding only ", model->config().vocab_size, " rows");

    llm::GenerateOptions go;
    go.max_new_tokens = a.get_int("--n-predict");
    go.sampler = sampling_params(a);
    go.prefill_chunk = 512;
    const int64_t eos = tok ? tok->eos_id() : model->config().eos_token_id;
    if (!a.on("--ignore-eos")) go.stop_ids = {eos};
    std::fprintf(stderr, "model: %s | %s %s | context %lld | seed %llu\n", dir.c_str(), lo.device.str().c_str(),
                 c10::toString(model->dtype()), (long long)model->context(), (unsigned long long)go.sampler.seed);

    llm::KVCache cache = model->new_cache();
    if (by_ids) {
        const std::vector<int64_t> prompt = parse_ids(a.get("--prompt-ids"));
        std::vector<int64_t> out;
        std::unique_ptr<text::StreamDecoder> sd;
        if (!print_ids) sd = std::make_unique<text::StreamDecoder>(*tok);
        auto st = llm::generate(*model, cache, prompt, go, [&](int64_t id) {
            out.push_back(id);
            if (sd) {
                std::fputs(sd->push(id).c_str(), stdout);
                std::fflush(stdout);
            }
            return true;
        });
        if (print_ids) {
            for (size_t i = 0; i < out.size(); ++i) std::printf(i ? " %lld" : "%lld", (long long)out[i]);
            std::printf("\n");
        } else {
            std::printf("%s\n", sd->flush().c_str());
        }
        print_timings(st, load_s);
        return 0;
    }

    std::string question = a.has("--prompt") ? a.get("--prompt") : io::read_text_file(a.get("--file"));
    text::Conversation conv = text::vicuna_v1();
    if (a.has("--system")) conv.system = a.get("--system");
    // tokens in the cache so far; each turn re-tokenizes the whole conversation (as the reference does)
    // and runs only what differs from the cached prefix
    std::vector<int64_t> context;
    for (;;) {
        std::vector<int64_t> ids;
        if (a.on("--raw")) {
            ids = tok->encode(question, tok->add_bos());
        } else {
            conv.append(0, question);
            conv.append(1, "");
            ids = tok->encode(conv.prompt(), tok->add_bos());
        }
        size_t common = 0;
        while (common < ids.size() && common < context.size() && ids[common] == context[common]) ++common;
        common = std::min(common, size_t(cache.length));  // the last sampled token was never run
        if (common == ids.size()) --common;                 // at least one token runs, to get logits
        cache.length = int64_t(common);
        const std::vector<int64_t> fresh(ids.begin() + int64_t(common), ids.end());
        context = ids;

        std::vector<int64_t> answer;
        text::StreamDecoder sd(*tok);
        auto st = llm::generate(*model, cache, fresh, go, [&](int64_t id) {
            if (id == eos && !a.on("--ignore-eos")) return true;
            answer.push_back(id);
            if (print_ids) return true;
            std::fputs(sd.push(id).c_str(), stdout);
            std::fflush(stdout);
            return true;
        });
        context.insert(context.end(), answer.begin(), answer.end());
        if (print_ids) {
            for (size_t i = 0; i < answer.size(); ++i) std::printf(i ? " %lld" : "%lld", (long long)answer[i]);
            if (st.stopped) std::printf(answer.empty() ? "%lld" : " %lld", (long long)eos);
            std::printf("\n");
        } else {
            std::printf("%s\n", sd.flush().c_str());
        }
        std::fflush(stdout);
        print_timings(st, load_s);
        if (!a.on("--interactive") || a.on("--raw")) break;
        if (!conv.messages.empty()) conv.messages.back().second = tok->decode(answer, /*skip_special_tokens=*/true);
        std::fprintf(stderr, "> ");
        if (!std::getline(std::cin, question)) break;
    }
    return 0;
}

}  // namespace visionllm::cli
