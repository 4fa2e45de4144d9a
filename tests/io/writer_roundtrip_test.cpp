// Our writers and readers agree, for every dtype, both formats, sharded
// directories and forced zip64 records.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "io/writers.h"
#include "visionllm/checkpoint.h"

using namespace visionllm;
using namespace visionllm::test;

namespace {

struct Sample {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    std::vector<uint8_t> bytes;
};

std::vector<Sample> samples() {
    std::vector<Sample> out;
    const DType dts[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::I64,
                         DType::I32, DType::I16, DType::I8,  DType::U8,   DType::Bool};
    const std::vector<std::vector<int64_t>> shapes = {{3, 5}, {7}, {2, 1, 3}, {}, {0, 4}, {1, 33}};
    uint32_t x = 12345;
    int k = 0;
    for (DType dt : dts) {
        for (const auto & shape : shapes) {
            Sample s{"t" + std::to_string(k++) + "." + dtype_name(dt), dt, shape, {}};
            int64_t n = 1;
            for (int64_t d : shape) n *= d;
            s.bytes.resize(size_t(n) * dtype_size(dt));
            for (auto & b : s.bytes) {
                x = x * 1664525u + 1013904223u;
                b = uint8_t(x >> 24);
            }
            if (dt == DType::Bool) {
                for (auto & b : s.bytes) b &= 1;
            }
            out.push_back(std::move(s));
        }
    }
    return out;
}

std::vector<io::TensorToWrite> to_write(const std::vector<Sample> & ss) {
    std::vector<io::TensorToWrite> w;
    for (const auto & s : ss) w.push_back(io::tensor_from_bytes(s.name, s.dtype, s.shape, s.bytes.data()));
    return w;
}

void expect_all(const WeightMap & w, const std::vector<Sample> & ss) {
    ASSERT_EQ(w.size(), ss.size());
    for (const auto & s : ss) {
        ASSERT_TRUE(w.contains(s.name)) << s.name;
        EXPECT_EQ(w.info(s.name).dtype, s.dtype) << s.name;
        at::Tensor t = w.get(s.name);
        EXPECT_EQ(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), s.shape) << s.name;
        ASSERT_EQ(size_t(t.nbytes()), s.bytes.size()) << s.name;
        if (!s.bytes.empty()) EXPECT_EQ(std::memcmp(t.data_ptr(), s.bytes.data(), s.bytes.size()), 0) << s.name;
    }
}

}  // namespace

TEST(WriterRoundTrip, TorchZip) {
    TempDir d("rt");
    auto ss = samples();
    io::write_torch_zip(d.file("m.bin"), to_write(ss));
    expect_all(WeightMap::open(d.file("m.bin")), ss);
}

TEST(WriterRoundTrip, TorchZipForcedZip64) {
    TempDir d("rt");
    auto ss = samples();
    io::TorchZipOptions o;
    o.force_zip64 = true;
    o.archive_name = "pytorch_model-00001-of-00001";
    io::write_torch_zip(d.file("m.bin"), to_write(ss), o);
    expect_all(WeightMap::open(d.file("m.bin")), ss);
}

TEST(WriterRoundTrip, TorchZipDataIs64ByteAligned) {
    TempDir d("rt");
    auto ss = samples();
    io::write_torch_zip(d.file("m.bin"), to_write(ss));
    WeightMap w = WeightMap::open(d.file("m.bin"));
    for (const auto & s : ss) EXPECT_EQ(w.info(s.name).data_offset % 64, 0u) << s.name;
}

TEST(WriterRoundTrip, Safetensors) {
    TempDir d("rt");
    auto ss = samples();
    io::write_safetensors(d.file("m.safetensors"), to_write(ss), {{"format", "pt"}});
    expect_all(WeightMap::open(d.file("m.safetensors")), ss);
}

TEST(WriterRoundTrip, StreamedInChunks) {
    // a tensor bigger than the writer's 4 MiB chunk, filled by index
    TempDir d("rt");
    io::TensorToWrite t;
    t.name = "big";
    t.dtype = DType::I32;
    t.shape = {3, 1000001};
    t.fill = [](uint8_t * dst, uint64_t off, uint64_t n) {
        for (uint64_t i = 0; i < n; i += 4) {
            int32_t v = int32_t((off + i) / 4);
            std::memcpy(dst + i, &v, 4);
        }
    };
    io::write_torch_zip(d.file("big.bin"), {t});
    io::write_safetensors(d.file("big.safetensors"), {t});
    for (const char * f : {"big.bin", "big.safetensors"}) {
        at::Tensor x = WeightMap::open(d.file(f)).get("big");
        EXPECT_TRUE(at::equal(x.flatten(), at::arange(3 * 1000001, at::kInt))) << f;
    }
}
