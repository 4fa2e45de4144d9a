// Bounds-checked little-endian reads from untrusted byte buffers.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "visionllm/error.h"

namespace visionllm::io {

inline uint64_t rd_le(const uint8_t * p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
}

// a + b, failing with `what` on overflow
inline uint64_t add_checked(uint64_t a, uint64_t b, const std::string & what) {
    if (a > std::numeric_limits<uint64_t>::max() - b) fail(what, ": size arithmetic overflows");
    return a + b;
}

inline uint64_t mul_checked(uint64_t a, uint64_t b, const std::string & what) {
    if (a != 0 && b > std::numeric_limits<uint64_t>::max() / a) fail(what, ": size arithmetic overflows");
    return a * b;
}

// a cursor over [data, data+size) that throws, naming `what`, instead of reading past the end
class ByteReader {
public:
    ByteReader(const uint8_t * data, size_t size, std::string what)
        : data_(data), size_(size), what_(std::move(what)) {}

    size_t pos() const { return pos_; }
    size_t size() const { return size_; }
    bool at_end() const { return pos_ >= size_; }
    void seek(uint64_t pos) {
        if (pos > size_) fail(what_, ": offset ", pos, " is beyond the end (", size_, " bytes)");
        pos_ = size_t(pos);
    }
    void need(uint64_t n) const {
        if (n > size_ - pos_) fail(what_, ": truncated: need ", n, " bytes at offset ", pos_, ", have ", size_ - pos_);
    }
    uint64_t u(int n) {
        need(n);
        uint64_t v = rd_le(data_ + pos_, n);
        pos_ += n;
        return v;
    }
    uint8_t u8() { return uint8_t(u(1)); }
    const uint8_t * take(uint64_t n) {
        need(n);
        const uint8_t * p = data_ + pos_;
        pos_ += size_t(n);
        return p;
    }
    std::string str(uint64_t n) {
        const uint8_t * p = take(n);
        return std::string(reinterpret_cast<const char *>(p), size_t(n));
    }
    // reads up to (excluding) '\n'
    std::string line() {
        const void * nl = std::memchr(data_ + pos_, '\n', size_ - pos_);
        if (nl == nullptr) fail(what_, ": truncated: unterminated line at offset ", pos_);
        size_t n = size_t(static_cast<const uint8_t *>(nl) - (data_ + pos_));
        std::string s = str(n);
        pos_ += 1;
        return s;
    }
    const std::string & what() const { return what_; }

private:
    const uint8_t * data_;
    size_t size_;
    size_t pos_ = 0;
    std::string what_;
};

}  // namespace visionllm::io
