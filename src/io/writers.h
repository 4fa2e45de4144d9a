// Writers for both checkpoint formats, streaming tensor bytes chunk by chunk
// so multi-GB checkpoints (make-tiny --preset 7b, the RSS test) never sit in RAM.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <map>
#include <string>
#include <vector>

#include "visionllm/dtype.h"

namespace visionllm::io {

struct TensorToWrite {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    // fills `n` bytes of the contiguous tensor starting at byte `offset`
    std::function<void(uint8_t * dst, uint64_t offset, uint64_t n)> fill;

    uint64_t nbytes() const;
};

// a TensorToWrite over bytes that outlive the write call
TensorToWrite tensor_from_bytes(std::string name, DType dtype, std::vector<int64_t> shape, const void * data);

void write_safetensors(const std::string & path, const std::vector<TensorToWrite> & tensors,
                       const std::map<std::string, std::string> & metadata = {});

struct TorchZipOptions {
    std::string archive_name = "archive";  // the folder inside the zip, as torch.save names it
    bool force_zip64 = false;              // write zip64 records even for small files (tests)
};
void write_torch_zip(const std::string & path, const std::vector<TensorToWrite> & tensors,
                     const TorchZipOptions & opts = {});

// a stored (uncompressed) zip, entries 64-byte aligned as torch.save writes them
class ZipWriter {
public:
    ZipWriter(const std::string & path, bool force_zip64 = false);
    ~ZipWriter();
    // `emit` writes exactly `size` bytes through write() and returns their crc32
    void add(const std::string & name, uint64_t size, const std::function<uint32_t()> & emit);
    void add_bytes(const std::string & name, const std::string & data);
    void add_tensor(const std::string & name, const TensorToWrite & t);
    void finish();

private:
    struct Impl;
    Impl * impl_;
};

// the data.pkl torch.save writes for {name: tensor} (storage keys "0", "1", ...)
std::string state_dict_pickle(const std::vector<TensorToWrite> & tensors);

// writes `text` to `path`, failing with the path named
void write_text_file(const std::string & path, const std::string & text);

}  // namespace visionllm::io
