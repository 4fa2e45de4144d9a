// Malformed checkpoints fail with an error that names the file and the
// problem; none of them crash.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/test_util.h"
#include "io/formats.h"
#include "io/writers.h"
#include "io/zip.h"
#include "visionllm/checkpoint.h"

using namespace visionllm;
using namespace visionllm::test;

namespace {

std::vector<float> k_vals(16, 1.0f);

std::string parse_error_torch(const std::string & bytes, const std::string & what = "ckpt.bin") {
    return error_of([&] {
        io::parse_torch_zip(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size(), what);
    });
}
std::string parse_error_st(const std::string & bytes, const std::string & what = "ckpt.safetensors") {
    return error_of([&] {
        io::parse_safetensors(reinterpret_cast<const uint8_t *>(bytes.data()), bytes.size(), what);
    });
}

std::string safetensors_with_header(const std::string & header, size_t data_bytes) {
    std::string out(8, '\0');
    for (int i = 0; i < 8; ++i) out[size_t(i)] = char(uint8_t(uint64_t(header.size()) >> (8 * i)));
    return out + header + std::string(data_bytes, '\x01');
}

// --- hand-built pickles
std::string pk_str(const std::string & s) {
    std::string o = "X";
    for (int i = 0; i < 4; ++i) o += char(uint8_t(s.size() >> (8 * i)));
    return o + s;
}
std::string pk_int(int64_t v) {
    std::string o = "\x8a\x08";
    for (int i = 0; i < 8; ++i) o += char(uint8_t(uint64_t(v) >> (8 * i)));
    return o;
}
// {"w": _rebuild_tensor_v2(storage(type, "0", numel), offset, size, stride, False, OrderedDict())}
std::string tensor_pickle(const std::string & storage_type, int64_t numel, int64_t offset, std::vector<int64_t> size,
                          std::vector<int64_t> stride) {
    std::string o = "\x80\x02}(" + pk_str("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" + pk_str("storage") + "c" +
                    storage_type + "\n" + pk_str("0") + pk_str("cpu") + pk_int(numel) + "tQ" + pk_int(offset) + "(";
    for (int64_t s : size) o += pk_int(s);
    o += "t(";
    for (int64_t s : stride) o += pk_int(s);
    o += "t\x89" "ccollections\nOrderedDict\n)RtRu.";
    return o;
}

std::string torch_zip_with(const TempDir & d, const std::string & pickle, size_t storage_bytes) {
    io::ZipWriter z(d.file("custom.bin"));
    z.add_bytes("archive/data.pkl", pickle);
    z.add_bytes("archive/data/0", std::string(storage_bytes, '\0'));
    z.add_bytes("archive/version", "3\n");
    z.finish();
    return read_file(d.file("custom.bin"));
}

}  // namespace

// the whole file parses, and every proper prefix of it is refused with the file named
template <class ParseError>
void expect_every_truncation_fails(const std::string & good, ParseError parse_error, const std::string & what) {
    ASSERT_EQ(parse_error(good), "");
    for (size_t n = 0; n < good.size(); ++n) {
        std::string e = parse_error(good.substr(0, n));
        ASSERT_NE(e, "") << "truncated to " << n << " bytes was accepted";
        EXPECT_NE(e.find(what), std::string::npos) << e;
    }
}

TEST(Malformed, TruncatedTorchZipAtEveryLength) {
    TempDir d("bad");
    io::write_torch_zip(d.file("ok.bin"), {io::tensor_from_bytes("w", DType::F32, {4, 4}, k_vals.data())});
    expect_every_truncation_fails(read_file(d.file("ok.bin")), [](const std::string & b) { return parse_error_torch(b); },
                                  "ckpt.bin");
}

TEST(Malformed, TruncatedSafetensorsAtEveryLength) {
    TempDir d("bad");
    io::write_safetensors(d.file("ok.safetensors"), {io::tensor_from_bytes("w", DType::F32, {4, 4}, k_vals.data())});
    expect_every_truncation_fails(read_file(d.file("ok.safetensors")),
                                  [](const std::string & b) { return parse_error_st(b); }, "ckpt.safetensors");
}

TEST(Malformed, SafetensorsHeaderLengthBeyondFile) {
    std::string bytes = safetensors_with_header("{}", 0);
    bytes[3] = '\x7f';
    std::string e = parse_error_st(bytes);
    EXPECT_NE(e.find("header length"), std::string::npos) << e;
    EXPECT_NE(e.find("beyond the end"), std::string::npos) << e;
}

TEST(Malformed, SafetensorsOffsetsOutOfRange) {
    std::string e = parse_error_st(
        safetensors_with_header(R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", 8));
    EXPECT_NE(e.find("'w'"), std::string::npos) << e;
    EXPECT_NE(e.find("outside the data section"), std::string::npos) << e;
}

TEST(Malformed, SafetensorsUnknownDtype) {
    std::string e = parse_error_st(
        safetensors_with_header(R"({"w": {"dtype": "Q7", "shape": [4], "data_offsets": [0, 4]}})", 4));
    EXPECT_NE(e.find("unknown dtype"), std::string::npos) << e;
    EXPECT_NE(e.find("Q7"), std::string::npos) << e;
}

TEST(Malformed, SafetensorsShapeVsByteCount) {
    std::string e = parse_error_st(
        safetensors_with_header(R"({"w": {"dtype": "BF16", "shape": [3, 3], "data_offsets": [0, 8]}})", 8));
    EXPECT_NE(e.find("'w' [3, 3] bf16 needs 18 bytes"), std::string::npos) << e;
}

TEST(Malformed, SafetensorsInvalidJson) {
    std::string e = parse_error_st(safetensors_with_header(R"({"w": {"dtype": )", 0));
    EXPECT_NE(e.find("invalid JSON header"), std::string::npos) << e;
    e = parse_error_st(safetensors_with_header(R"([1, 2])", 0));
    EXPECT_NE(e.find("not a JSON object"), std::string::npos) << e;
}

TEST(Malformed, SafetensorsOverlappingTensors) {
    std::string e = parse_error_st(safetensors_with_header(
        R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})", 12));
    EXPECT_NE(e.find("overlap"), std::string::npos) << e;
}

TEST(Malformed, SafetensorsShapeOverflow) {
    std::string e = parse_error_st(safetensors_with_header(
        R"({"a": {"dtype": "F32", "shape": [4294967296, 4294967296, 16], "data_offsets": [0, 0]}})", 0));
    EXPECT_NE(e.find("overflows"), std::string::npos) << e;
}

TEST(Malformed, TorchTensorBeyondItsStorage) {
    TempDir d("bad");
    std::string e = parse_error_torch(torch_zip_with(d, tensor_pickle("torch\nFloatStorage", 4, 2, {4}, {1}), 16));
    EXPECT_NE(e.find("tensor 'w'"), std::string::npos) << e;
    EXPECT_NE(e.find("storage holds only 4 elements"), std::string::npos) << e;
    e = parse_error_torch(torch_zip_with(d, tensor_pickle("torch\nFloatStorage", 4, 0, {2, 2}, {3, 1}), 16));
    EXPECT_NE(e.find("storage holds only 4 elements"), std::string::npos) << e;
}

TEST(Malformed, TorchStorageSizeVsEntrySize) {
    TempDir d("bad");
    std::string e = parse_error_torch(torch_zip_with(d, tensor_pickle("torch\nBFloat16Storage", 8, 0, {8}, {1}), 12));
    EXPECT_NE(e.find("storage '0' of tensor 'w' holds 12 bytes but the pickle declares 8 elements of bf16"),
              std::string::npos)
        << e;
}

TEST(Malformed, TorchUnknownStorageType) {
    TempDir d("bad");
    std::string e = parse_error_torch(torch_zip_with(d, tensor_pickle("torch\nComplexFloatStorage", 2, 0, {2}, {1}), 16));
    EXPECT_NE(e.find("unsupported storage type 'torch.ComplexFloatStorage'"), std::string::npos) << e;
}

TEST(Malformed, TorchNegativeStride) {
    TempDir d("bad");
    std::string e = parse_error_torch(torch_zip_with(d, tensor_pickle("torch\nFloatStorage", 4, 3, {4}, {-1}), 16));
    EXPECT_NE(e.find("negative"), std::string::npos) << e;
}

TEST(Malformed, TorchUnsupportedPickleOpcode) {
    TempDir d("bad");
    std::string pk = tensor_pickle("torch\nFloatStorage", 4, 0, {4}, {1});
    pk[2] = '\xf0';  // right after PROTO
    std::string e = parse_error_torch(torch_zip_with(d, pk, 16));
    EXPECT_NE(e.find("unsupported pickle opcode 0xf0 at offset 2"), std::string::npos) << e;
    EXPECT_NE(e.find("data.pkl"), std::string::npos) << e;
}

TEST(Malformed, TorchRefusesArbitraryCallables) {
    TempDir d("bad");
    std::string pk = "\x80\x02}(" + pk_str("w") + "cos\nsystem\n(" + pk_str("echo pwned") + "tRu.";
    std::string e = parse_error_torch(torch_zip_with(d, pk, 0));
    EXPECT_NE(e.find("unsupported Python object 'os.system'"), std::string::npos) << e;
}

TEST(Malformed, TorchDeepNestingIsBounded) {
    TempDir d("bad");
    std::string pk = "\x80\x02";
    for (int i = 0; i < 10000; ++i) pk += "]";
    for (int i = 0; i < 9999; ++i) pk += "a";
    pk += ".";
    std::string e = parse_error_torch(torch_zip_with(d, pk, 0));
    EXPECT_NE(e.find("nested deeper"), std::string::npos) << e;
}

TEST(Malformed, TorchStackUnderflow) {
    TempDir d("bad");
    std::string e = parse_error_torch(torch_zip_with(d, "\x80\x02R.", 0));
    EXPECT_NE(e.find("stack underflow"), std::string::npos) << e;
}

TEST(Malformed, NotAZipAtAll) {
    std::string e = parse_error_torch(std::string(100, 'x'));
    EXPECT_NE(e.find("not a torch.save zip archive"), std::string::npos) << e;
}

TEST(Malformed, ZipWithoutDataPkl) {
    TempDir d("bad");
    io::ZipWriter z(d.file("x.bin"));
    z.add_bytes("hello/world.txt", "hi");
    z.finish();
    std::string e = parse_error_torch(read_file(d.file("x.bin")));
    EXPECT_NE(e.find("no <name>/data.pkl"), std::string::npos) << e;
}

TEST(Malformed, EveryByteFlipIsAnErrorOrAValidParse) {
    // flip each byte of real torch.save and safetensors files: parse or throw, never crash
    for (const char * f : {"all.bin", "module_state.bin", "dense.safetensors"}) {
        const std::string good = read_file(golden_dir("io") + "/" + f);
        const bool st = std::string(f).find("safetensors") != std::string::npos;
        size_t errors = 0;
        for (size_t i = 0; i < good.size(); ++i) {
            for (uint8_t mask : {uint8_t(0x01), uint8_t(0x80), uint8_t(0xff)}) {
                std::string b = good;
                b[i] = char(uint8_t(b[i]) ^ mask);
                errors += (st ? parse_error_st(b) : parse_error_torch(b)).empty() ? 0 : 1;
            }
        }
        EXPECT_GT(errors, 0u) << f;
    }
}

TEST(Malformed, FileLevelErrorsNameThePath) {
    TempDir d("bad");
    write_file(d.file("model.safetensors"), "garbage!");
    std::string e = error_of([&] { WeightMap::open(d.file("model.safetensors")); });
    EXPECT_NE(e.find(d.file("model.safetensors")), std::string::npos) << e;
    e = error_of([&] { WeightMap::open(d.file("nope.bin")); });
    EXPECT_NE(e.find("nope.bin"), std::string::npos) << e;
    write_file(d.file("empty.bin"), "");
    e = error_of([&] { WeightMap::open(d.file("empty.bin")); });
    EXPECT_NE(e.find("empty.bin"), std::string::npos) << e;
}
