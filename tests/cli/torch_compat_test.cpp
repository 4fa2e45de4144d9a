// make-tiny's files load in the reference implementation: Python torch.load
// (weights_only, with and without mmap) and safetensors read every tensor with
// the same bytes our reader sees. Uses the project venv's Python; skips without it.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "visionllm/checkpoint.h"
#include "io/writers.h"
#include "visionllm/make_tiny.h"

using namespace visionllm::test;
using json = nlohmann::json;

namespace {

bool have_python_torch() {
    std::string out;
    return run("'" + python_path() + "' -c 'import torch, safetensors' ", &out) == 0;
}

// {name: crc32 of the contiguous bytes} from Python, loading every file of `dir`
json python_crcs(const std::string & dir, bool mmap) {
    const std::string script = R"PY(
import glob, json, sys, zlib, torch
from safetensors.torch import load_file
d, mmap = sys.argv[1], sys.argv[2] == "1"
out = {}
for f in sorted(glob.glob(d + "/*.bin")):
    for k, v in torch.load(f, map_location="cpu", weights_only=True, mmap=mmap).items():
        out[k] = zlib.crc32(v.contiguous().view(torch.uint8).numpy().tobytes())
for f in sorted(glob.glob(d + "/*.safetensors")):
    for k, v in load_file(f).items():
        out[k] = zlib.crc32(v.contiguous().view(torch.uint8).numpy().tobytes())
print(json.dumps(out))
)PY";
    write_file(dir + "/crc.py", script);
    std::string out;
    int rc = run("'" + python_path() + "' " + dir + "/crc.py " + dir + (mmap ? " 1" : " 0"), &out);
    EXPECT_EQ(rc, 0) << out;
    return json::parse(out.substr(out.find('{')));
}

}  // namespace

TEST(TorchCompat, ReferenceLoadersReadMakeTinyOutput) {
    if (!have_python_torch()) GTEST_SKIP() << "no Python torch + safetensors at " << python_path();
    for (const char * format : {"bin", "safetensors"}) {
        TempDir d("compat");
        visionllm::MakeTinyOptions o;
        o.out_dir = d.path();
        o.format = format;
        o.shards = 2;
        o.progress = false;
        visionllm::make_tiny(o);
        visionllm::WeightMap w = visionllm::WeightMap::open(d.path());
        for (bool mmap : {false, true}) {
            if (mmap && std::string(format) != "bin") continue;
            json py = python_crcs(d.path(), mmap);
            ASSERT_EQ(py.size(), w.size()) << format;
            for (const auto & name : w.names()) {
                at::Tensor t = w.get(name).contiguous();
                uint32_t crc = uint32_t(crc32_z(crc32(0L, Z_NULL, 0), static_cast<const Bytef *>(t.data_ptr()), size_t(t.nbytes())));
                ASSERT_TRUE(py.contains(name)) << name;
                EXPECT_EQ(py[name].get<uint32_t>(), crc) << format << " " << name;
            }
        }
    }
}

TEST(TorchCompat, ReferenceLoaderReadsZip64Archives) {
    if (!have_python_torch()) GTEST_SKIP() << "no Python torch + safetensors at " << python_path();
    TempDir d("compat");
    std::vector<float> v(1000);
    for (size_t i = 0; i < v.size(); ++i) v[i] = float(i) * 0.5f;
    visionllm::io::TorchZipOptions o;
    o.force_zip64 = true;
    visionllm::io::write_torch_zip(d.file("z64.bin"),
                                   {visionllm::io::tensor_from_bytes("a", visionllm::DType::F32, {10, 100}, v.data()),
                                    visionllm::io::tensor_from_bytes("b", visionllm::DType::F32, {1000}, v.data())},
                                   o);
    json py = python_crcs(d.path(), true);
    ASSERT_EQ(py.size(), 2u);
    const uint32_t crc = uint32_t(crc32_z(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef *>(v.data()), v.size() * 4));
    EXPECT_EQ(py["a"].get<uint32_t>(), crc);
    EXPECT_EQ(py["b"].get<uint32_t>(), crc);
}
