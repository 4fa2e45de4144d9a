// A read-only view of a whole file through mmap. Pages are mapped private and
// writable (copy-on-write), so a tensor viewed over it can be modified in place
// without touching the file, and nothing is read until it is used.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace visionllm::io {

class MappedFile {
public:
    static std::shared_ptr<MappedFile> open(const std::string & path);
    ~MappedFile();
    MappedFile(const MappedFile &) = delete;
    MappedFile & operator=(const MappedFile &) = delete;

    const uint8_t * data() const { return data_; }
    uint8_t * mutable_data() const { return data_; }
    size_t size() const { return size_; }
    const std::string & path() const { return path_; }

private:
    MappedFile() = default;
    std::string path_;
    uint8_t * data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace visionllm::io
