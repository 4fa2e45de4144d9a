// Minimal ZIP reader for the archives torch.save writes: stored (uncompressed)
// entries, zip64 when offsets or sizes pass 4 GiB. Works on a byte span so it
// can be fuzzed without files.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace visionllm::io {

struct ZipEntry {
    std::string name;
    uint64_t data_offset = 0;  // absolute offset of the entry's bytes in the archive
    uint64_t size = 0;         // uncompressed == compressed size (stored entries)
    uint16_t method = 0;       // 0 = stored
    uint32_t crc32 = 0;
};

class ZipReader {
public:
    // `what` names the archive in error messages (usually its path)
    ZipReader(const uint8_t * data, size_t size, std::string what);

    const std::vector<ZipEntry> & entries() const { return entries_; }
    const ZipEntry * find(const std::string & name) const;
    // the entry, which must be stored uncompressed; throws naming it otherwise
    const ZipEntry & stored(const std::string & name) const;

private:
    std::string what_;
    std::vector<ZipEntry> entries_;
    std::unordered_map<std::string, size_t> index_;
};

}  // namespace visionllm::io
