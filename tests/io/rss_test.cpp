// Loading maps tensor data instead of reading it: opening a ~1 GB checkpoint
// costs almost no memory, and reading every byte peaks at the file size plus
// at most 10%.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "common/test_util.h"
#include "core/membw.h"
#include "io/writers.h"
#include "visionllm/checkpoint.h"

using namespace visionllm;
using namespace visionllm::test;

namespace {

// "VmRSS" or "VmHWM" of this process, in bytes
uint64_t proc_status_kb(const std::string & key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1)) * 1024;
    }
    return 0;
}

bool reset_peak_rss() {
    std::ofstream out("/proc/self/clear_refs");
    out << "5";
    out.flush();
    return bool(out);
}

}  // namespace

TEST(MappedLoading, PeakRssStaysWithinFileSizePlusTenPercent) {
#if defined(__SANITIZE_ADDRESS__)
    GTEST_SKIP() << "AddressSanitizer's shadow memory inflates RSS";
#endif
    TempDir d("rss");
    const int n_tensors = 16;
    const int64_t rows = 4096, cols = 8192;  // 64 MiB of bf16 each, 1 GiB in all
    std::vector<io::TensorToWrite> ts;
    for (int k = 0; k < n_tensors; ++k) {
        io::TensorToWrite t;
        t.name = "layers." + std::to_string(k) + ".weight";
        t.dtype = DType::BF16;
        t.shape = {rows, cols};
        t.fill = [k](uint8_t * dst, uint64_t off, uint64_t n) {
            for (uint64_t i = 0; i < n; ++i) dst[i] = uint8_t((off + i) * 7 + uint64_t(k));
        };
        ts.push_back(t);
    }
    const std::string path = d.file("pytorch_model.bin");
    io::write_torch_zip(path, ts);
    const uint64_t file_bytes = uint64_t(n_tensors) * uint64_t(rows * cols * 2);

    uint64_t expect = 0;
    {
        std::vector<uint8_t> buf(size_t(rows * cols * 2));
        for (int k = 0; k < n_tensors; ++k) {
            ts[size_t(k)].fill(buf.data(), 0, buf.size());
            expect += read_all(buf.data(), buf.size(), 1);
        }
    }

    ASSERT_TRUE(reset_peak_rss()) << "cannot reset VmHWM through /proc/self/clear_refs";
    const uint64_t base = proc_status_kb("VmRSS");
    {
        WeightMap w = WeightMap::open(path);
        std::vector<at::Tensor> all;
        for (const auto & name : w.names()) all.push_back(w.get(name));
        const uint64_t after_open = proc_status_kb("VmRSS");
        EXPECT_LT(after_open - std::min(after_open, base), file_bytes / 20)
            << "opening and viewing every tensor should not read the data";

        uint64_t sum = 0;
        for (const auto & t : all) sum += read_all(t.data_ptr(), size_t(t.nbytes()), 2);
        EXPECT_EQ(sum, expect) << "mapped bytes differ from what was written";
    }
    const uint64_t peak = proc_status_kb("VmHWM");
    const double ratio = double(peak - std::min(peak, base)) / double(file_bytes);
    std::printf("file %.3f GB, base RSS %.3f GB, peak %.3f GB: peak - base = %.3f x file size\n", file_bytes / 1e9,
                base / 1e9, peak / 1e9, ratio);
    EXPECT_LE(ratio, 1.10);
}
