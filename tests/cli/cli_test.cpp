// The command-line tools, run as a user runs them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "visionllm/device.h"

using namespace visionllm::test;
using json = nlohmann::json;

namespace {
std::string vl() { return bin_path("visionllm"); }

std::string must_run(const std::string & cmd, int want_rc = 0) {
    std::string out;
    int rc = run(cmd, &out);
    EXPECT_EQ(rc, want_rc) << cmd << "\n" << out;
    return out;
}
}  // namespace

TEST(Cli, HelpAndVersion) {
    std::string out = must_run(vl() + " --help");
    for (const char * cmd : {"inspect", "make-tiny", "info"}) EXPECT_NE(out.find(cmd), std::string::npos) << out;
    EXPECT_NE(must_run(vl() + " --version").find("visionllm 0."), std::string::npos);
    out = must_run(vl() + " make-tiny --help");
    for (const char * flag : {"--output", "--components", "--preset", "--dtype", "--format", "--shards", "--seed"})
        EXPECT_NE(out.find(flag), std::string::npos) << flag << "\n" << out;
    out = must_run(vl() + " inspect --help");
    EXPECT_NE(out.find("--model"), std::string::npos) << out;
    EXPECT_NE(out.find("--json"), std::string::npos) << out;
    EXPECT_NE(must_run(vl() + " info --help").find("--device"), std::string::npos);
    must_run(vl(), 1);  // no command: usage on stderr, failure
}

TEST(Cli, BadInvocationsSayWhatIsWrong) {
    std::string out = must_run(vl() + " frobnicate", 1);
    EXPECT_NE(out.find("unknown command 'frobnicate'"), std::string::npos) << out;
    out = must_run(vl() + " inspect --modle x", 1);
    EXPECT_NE(out.find("unknown option '--modle'"), std::string::npos) << out;
    out = must_run(vl() + " inspect", 1);
    EXPECT_NE(out.find("missing required option --model"), std::string::npos) << out;
    out = must_run(vl() + " inspect -m", 1);
    EXPECT_NE(out.find("--model needs a value"), std::string::npos) << out;
    out = must_run(vl() + " inspect -m /nonexistent/dir", 1);
    EXPECT_NE(out.find("/nonexistent/dir"), std::string::npos) << out;
    TempDir d("cli");
    out = must_run(vl() + " make-tiny -o " + d.path() + " --components llm,vision,unipose", 1);
    EXPECT_NE(out.find("'unipose'"), std::string::npos) << out;
    out = must_run(vl() + " make-tiny -o " + d.path() + " --components llm,vision,gdino --arch clip", 1);
    EXPECT_NE(out.find("--arch clip takes only the vision component"), std::string::npos) << out;
    out = must_run(vl() + " make-tiny -o " + d.path() + " --dtype q4", 1);
    EXPECT_NE(out.find("--dtype: unknown dtype 'q4'"), std::string::npos) << out;
    out = must_run(vl() + " make-tiny -o " + d.path() + " --shards two", 1);
    EXPECT_NE(out.find("--shards: 'two' is not an integer"), std::string::npos) << out;
}

TEST(Cli, MakeTinyThenInspectRoundTrips) {
    for (const char * extra : {"", " --format safetensors --shards 3 --dtype f32", " --shards 1 --dtype f16"}) {
        TempDir d("cli");
        must_run(vl() + " make-tiny --quiet -o " + d.path() + extra);
        std::string out = must_run(vl() + " inspect -m " + d.path());
        EXPECT_NE(out.find("key check: ok"), std::string::npos) << extra << "\n" << out;
        for (const char * comp : {"vis_encoder", "vl_bridge", "region_encoder", "llm", "emb_embeddings"})
            EXPECT_NE(out.find(comp), std::string::npos) << comp << "\n" << out;

        json j = json::parse(must_run(vl() + " inspect --json -m " + d.path()));
        EXPECT_TRUE(j["ok"].get<bool>()) << j.dump(2);
        EXPECT_EQ(j["kind"], "VisionLLMv2");
        for (const auto & c : j["components"]) {
            EXPECT_TRUE(c["missing"].empty() && c["unexpected"].empty() && c["mismatched"].empty()) << c.dump(2);
            EXPECT_GT(c["params"].get<uint64_t>(), 0u) << c.dump(2);
        }
        EXPECT_TRUE(j["unclaimed"].empty());
    }
}

TEST(Cli, MakeTinyWithoutRegionAndPlainLlama) {
    TempDir d("cli");
    must_run(vl() + " make-tiny --quiet -o " + d.path() + " --components llm,vision");
    json j = json::parse(must_run(vl() + " inspect --json -m " + d.path()));
    EXPECT_TRUE(j["ok"].get<bool>());
    for (const auto & c : j["components"]) EXPECT_NE(c["name"], "region_encoder");

    TempDir l("cli");
    must_run(vl() + " make-tiny --quiet --arch llama -o " + l.path());
    j = json::parse(must_run(vl() + " inspect --json -m " + l.path()));
    EXPECT_TRUE(j["ok"].get<bool>()) << j.dump(2);
    EXPECT_EQ(j["kind"], "Llama");
}

TEST(Cli, InspectReportsKeysThatDoNotMatch) {
    TempDir d("cli");
    must_run(vl() + " make-tiny --quiet -o " + d.path() + " --format safetensors");
    // claim a bigger vision MLP and no region encoder than the weights have
    json cfg = json::parse(read_file(d.file("config.json")));
    cfg["vis_encoder_config"]["intermediate_size"] = 96;
    cfg["use_region_encoder"] = false;
    write_file(d.file("config.json"), cfg.dump());
    std::string out = must_run(vl() + " inspect -m " + d.path(), 3);
    EXPECT_NE(out.find("key check: FAILED"), std::string::npos) << out;
    EXPECT_NE(out.find("vis_encoder.vision_model.encoder.layers.0.mlp.fc1.weight: expected [96, 32], found [64, 32]"),
              std::string::npos)
        << out;
    EXPECT_NE(out.find("region_encoder.up_dim.weight"), std::string::npos) << out;  // now unexpected
    json j = json::parse(must_run(vl() + " inspect --json -m " + d.path(), 3));
    EXPECT_FALSE(j["ok"].get<bool>());
    EXPECT_FALSE(j["unclaimed"].empty());
}

TEST(Cli, InfoAndDevice) {
    std::string out = must_run(vl() + " info --device cpu");
    EXPECT_NE(out.find("device: cpu"), std::string::npos) << out;
    if (!visionllm::cuda_usable()) {
        out = must_run(vl() + " info --device cuda", 1);
        EXPECT_NE(out.find("no usable CUDA device"), std::string::npos) << out;
    }
    out = must_run(vl() + " info --device tpu", 1);
    EXPECT_NE(out.find("invalid device 'tpu'"), std::string::npos) << out;
}

TEST(Cli, BenchAndEvalFrames) {
    std::string out = must_run(bin_path("visionllm-bench") + " --help");
    EXPECT_NE(out.find("membw"), std::string::npos) << out;
    json j = json::parse(must_run(bin_path("visionllm-bench") + " membw --size-mib 64 -r 1 --json"));
    EXPECT_GT(j["read_gbps"].get<double>(), 0.1);
    TempDir d("cli");
    must_run(vl() + " make-tiny --quiet -o " + d.path());
    j = json::parse(must_run(bin_path("visionllm-bench") + " load -m " + d.path() + " --json"));
    EXPECT_GT(j["tensors"].get<int>(), 50);
    EXPECT_GT(j["warm_pass_gbps"].get<double>(), 0.0);
    // the LLM benchmark on the checkpoint's llm.* (tiny: the figures only have to exist)
    j = json::parse(must_run(bin_path("visionllm-bench") + " llm -m " + d.path() + " -p 4 -n 2 -r 1 --json"));
    EXPECT_EQ(j["n_gen"].get<int>(), 2);
    EXPECT_GT(j["decode_tps"].get<double>(), 0.0);
    EXPECT_GT(j["prefill_tps"].get<double>(), 0.0);
    EXPECT_GT(j["weight_bytes"].get<double>(), 0.0);
    EXPECT_GT(j["torch_matvec_gbps"].get<double>(), 0.0);
    // the COCOeval benchmark on a small synthetic set (no baseline): 12 stats in [0, 1]
    j = json::parse(must_run(bin_path("visionllm-bench") + " cocoeval --images 40 --gt 250 --dets 20 -r 1 --json"));
    ASSERT_EQ(j["stats"].size(), 12u);
    EXPECT_GT(j["stats"][0].get<double>(), 0.0);
    EXPECT_LE(j["stats"][0].get<double>(), 1.0);
    EXPECT_EQ(j["dets"].get<int>(), 800);
    out = must_run(bin_path("visionllm-eval") + " --help");
    EXPECT_NE(out.find("score"), std::string::npos) << out;
    EXPECT_NE(out.find("run"), std::string::npos) << out;
    must_run(bin_path("visionllm-eval") + " coco", 1);
}
