#include "io/writers.h"

#include <zlib.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "visionllm/error.h"

namespace visionllm::io {

uint64_t TensorToWrite::nbytes() const {
    uint64_t n = dtype_size(dtype);
    for (int64_t s : shape) n *= uint64_t(s);
    return n;
}

TensorToWrite tensor_from_bytes(std::string name, DType dtype, std::vector<int64_t> shape, const void * data) {
    TensorToWrite t;
    t.name = std::move(name);
    t.dtype = dtype;
    t.shape = std::move(shape);
    const uint8_t * src = static_cast<const uint8_t *>(data);
    t.fill = [src](uint8_t * dst, uint64_t off, uint64_t n) { std::memcpy(dst, src + off, size_t(n)); };
    return t;
}

namespace {

class OutFile {
public:
    explicit OutFile(const std::string & path) : path_(path) {
        f_ = std::fopen(path.c_str(), "wb");
        if (f_ == nullptr) fail(path, ": cannot create: ", std::strerror(errno));
        std::setvbuf(f_, nullptr, _IOFBF, 1 << 20);
    }
    ~OutFile() {
        if (f_ != nullptr) std::fclose(f_);
    }
    void write(const void * p, size_t n) {
        if (n > 0 && std::fwrite(p, 1, n, f_) != n) fail(path_, ": write failed: ", std::strerror(errno));
        pos_ += n;
    }
    void u(uint64_t v, int n) {
        uint8_t b[8];
        for (int i = 0; i < n; ++i) b[i] = uint8_t(v >> (8 * i));
        write(b, size_t(n));
    }
    void str(const std::string & s) { write(s.data(), s.size()); }
    // overwrite 4 bytes at `at` and come back
    void patch_u32(uint64_t at, uint32_t v) {
        uint8_t b[4] = {uint8_t(v), uint8_t(v >> 8), uint8_t(v >> 16), uint8_t(v >> 24)};
        if (::fseeko(f_, off_t(at), SEEK_SET) != 0 || std::fwrite(b, 1, 4, f_) != 4 ||
            ::fseeko(f_, off_t(pos_), SEEK_SET) != 0)
            fail(path_, ": seek/write failed: ", std::strerror(errno));
    }
    // streams a tensor's bytes; returns their crc32
    uint32_t tensor(const TensorToWrite & t) {
        const uint64_t total = t.nbytes();
        const uint64_t chunk = uint64_t(4) << 20;
        std::vector<uint8_t> buf(size_t(std::min(total, chunk)));
        uLong crc = crc32(0L, Z_NULL, 0);
        for (uint64_t off = 0; off < total; off += chunk) {
            uint64_t n = std::min(chunk, total - off);
            t.fill(buf.data(), off, n);
            crc = crc32_z(crc, buf.data(), size_t(n));
            write(buf.data(), size_t(n));
        }
        return uint32_t(crc);
    }
    void close() {
        if (std::fclose(f_) != 0) {
            f_ = nullptr;
            fail(path_, ": close failed: ", std::strerror(errno));
        }
        f_ = nullptr;
    }
    uint64_t pos() const { return pos_; }

private:
    std::string path_;
    FILE * f_ = nullptr;
    uint64_t pos_ = 0;
};

// --- pickle of {name: _rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())}

void pk_str(std::string & o, const std::string & s) {
    o += 'X';
    for (int i = 0; i < 4; ++i) o += char(uint8_t(s.size() >> (8 * i)));
    o += s;
}

void pk_int(std::string & o, int64_t v) {
    if (v >= INT32_MIN && v <= INT32_MAX) {
        o += 'J';
        for (int i = 0; i < 4; ++i) o += char(uint8_t(uint64_t(v) >> (8 * i)));
    } else {
        o += '\x8a';
        o += char(8);
        for (int i = 0; i < 8; ++i) o += char(uint8_t(uint64_t(v) >> (8 * i)));
    }
}

}  // namespace

std::string state_dict_pickle(const std::vector<TensorToWrite> & tensors) {
    std::string o = "\x80\x02}(";
    for (size_t k = 0; k < tensors.size(); ++k) {
        const auto & t = tensors[k];
        pk_str(o, t.name);
        o += "ctorch._utils\n_rebuild_tensor_v2\n(";
        o += "(";
        pk_str(o, "storage");
        o += std::string("ctorch\n") + dtype_torch_storage_name(t.dtype) + "\n";
        pk_str(o, std::to_string(k));
        pk_str(o, "cpu");
        pk_int(o, int64_t(t.nbytes() / dtype_size(t.dtype)));
        o += "tQ";
        pk_int(o, 0);
        o += "(";
        for (int64_t s : t.shape) pk_int(o, s);
        o += "t(";
        int64_t stride = 1;
        std::vector<int64_t> strides(t.shape.size());
        for (size_t d = t.shape.size(); d-- > 0;) {
            strides[d] = stride;
            stride *= std::max<int64_t>(t.shape[d], 1);
        }
        for (int64_t s : strides) pk_int(o, s);
        o += "t\x89";
        o += "ccollections\nOrderedDict\n)R";
        o += "tR";
    }
    o += "u.";
    return o;
}

namespace {

struct CentralRecord {
    std::string name;
    uint32_t crc = 0;
    uint64_t size = 0, lho = 0;
};

}  // namespace

void write_text_file(const std::string & path, const std::string & text) {
    OutFile f(path);
    f.str(text);
    f.close();
}

void write_safetensors(const std::string & path, const std::vector<TensorToWrite> & tensors,
                       const std::map<std::string, std::string> & metadata) {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!metadata.empty()) h["__metadata__"] = metadata;
    uint64_t off = 0;
    for (const auto & t : tensors) {
        uint64_t n = t.nbytes();
        h[t.name] = {{"dtype", dtype_safetensors_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {off, off + n}}};
        off += n;
    }
    std::string hs = h.dump();
    while ((8 + hs.size()) % 8 != 0) hs += ' ';  // keep the data section 8-byte aligned
    OutFile f(path);
    f.u(hs.size(), 8);
    f.str(hs);
    for (const auto & t : tensors) f.tensor(t);
    f.close();
}

struct ZipWriter::Impl {
    explicit Impl(const std::string & path) : f(path) {}
    OutFile f;
    bool force_zip64 = false;
    bool finished = false;
    std::vector<CentralRecord> central;
};

ZipWriter::ZipWriter(const std::string & path, bool force_zip64) : impl_(new Impl(path)) {
    impl_->force_zip64 = force_zip64;
}

ZipWriter::~ZipWriter() { delete impl_; }

void ZipWriter::add(const std::string & name, uint64_t size, const std::function<uint32_t()> & emit) {
    OutFile & f = impl_->f;
    CentralRecord rec{name, 0, size, f.pos()};
    // local header (+zip64 sizes, +'FB' padding so the data is 64-byte aligned), then the data
    const bool z64 = impl_->force_zip64 || size >= 0xFFFFFFFFull;
    const uint64_t hdr = 30 + name.size() + (z64 ? 20 : 0);
    const uint64_t pad = (64 - (f.pos() + hdr + 4) % 64) % 64;
    f.u(0x04034b50, 4);
    f.u(z64 ? 45 : 20, 2);
    f.u(0, 2);     // flags
    f.u(0, 2);     // stored
    f.u(0, 2);     // time
    f.u(0x21, 2);  // date 1980-01-01
    const uint64_t crc_at = f.pos();
    f.u(0, 4);
    f.u(z64 ? 0xFFFFFFFFull : size, 4);
    f.u(z64 ? 0xFFFFFFFFull : size, 4);
    f.u(name.size(), 2);
    f.u((z64 ? 20 : 0) + 4 + pad, 2);
    f.str(name);
    if (z64) {
        f.u(0x0001, 2);
        f.u(16, 2);
        f.u(size, 8);
        f.u(size, 8);
    }
    f.u(0x4246, 2);  // 'FB' padding field, as torch writes it
    f.u(pad, 2);
    f.str(std::string(size_t(pad), 'Z'));
    const uint64_t start = f.pos();
    rec.crc = emit();
    if (f.pos() - start != size) fail("internal: zip entry '", name, "' wrote ", f.pos() - start, " of ", size, " bytes");
    f.patch_u32(crc_at, rec.crc);
    impl_->central.push_back(rec);
}

void ZipWriter::add_bytes(const std::string & name, const std::string & data) {
    add(name, data.size(), [&] {
        impl_->f.str(data);
        return uint32_t(crc32_z(crc32(0L, Z_NULL, 0), reinterpret_cast<const Bytef *>(data.data()), data.size()));
    });
}

void ZipWriter::add_tensor(const std::string & name, const TensorToWrite & t) {
    add(name, t.nbytes(), [&] { return impl_->f.tensor(t); });
}

void ZipWriter::finish() {
    if (impl_->finished) return;
    impl_->finished = true;
    OutFile & f = impl_->f;
    const bool force = impl_->force_zip64;
    const uint64_t cd_off = f.pos();
    for (const auto & c : impl_->central) {
        const bool big_size = force || c.size >= 0xFFFFFFFFull;
        const bool big_lho = force || c.lho >= 0xFFFFFFFFull;
        const uint64_t xlen = (big_size ? 16 : 0) + (big_lho ? 8 : 0);
        f.u(0x02014b50, 4);
        f.u(45, 2);
        f.u(xlen ? 45 : 20, 2);
        f.u(0, 2);
        f.u(0, 2);
        f.u(0, 2);
        f.u(0x21, 2);
        f.u(c.crc, 4);
        f.u(big_size ? 0xFFFFFFFFull : c.size, 4);
        f.u(big_size ? 0xFFFFFFFFull : c.size, 4);
        f.u(c.name.size(), 2);
        f.u(xlen ? xlen + 4 : 0, 2);
        f.u(0, 2);  // comment
        f.u(0, 2);  // disk
        f.u(0, 2);  // internal attrs
        f.u(0, 4);  // external attrs
        f.u(big_lho ? 0xFFFFFFFFull : c.lho, 4);
        f.str(c.name);
        if (xlen) {
            f.u(0x0001, 2);
            f.u(xlen, 2);
            if (big_size) {
                f.u(c.size, 8);
                f.u(c.size, 8);
            }
            if (big_lho) f.u(c.lho, 8);
        }
    }
    const uint64_t cd_size = f.pos() - cd_off;
    const uint64_t n = impl_->central.size();
    const bool z64 = force || n >= 0xFFFF || cd_off >= 0xFFFFFFFFull || cd_size >= 0xFFFFFFFFull;
    if (z64) {
        const uint64_t rec_at = f.pos();
        f.u(0x06064b50, 4);
        f.u(44, 8);
        f.u(45, 2);
        f.u(45, 2);
        f.u(0, 4);
        f.u(0, 4);
        f.u(n, 8);
        f.u(n, 8);
        f.u(cd_size, 8);
        f.u(cd_off, 8);
        f.u(0x07064b50, 4);
        f.u(0, 4);
        f.u(rec_at, 8);
        f.u(1, 4);
    }
    f.u(0x06054b50, 4);
    f.u(0, 2);
    f.u(0, 2);
    f.u(z64 ? 0xFFFF : n, 2);
    f.u(z64 ? 0xFFFF : n, 2);
    f.u(z64 ? 0xFFFFFFFFull : cd_size, 4);
    f.u(z64 ? 0xFFFFFFFFull : cd_off, 4);
    f.u(0, 2);
    f.close();
}

void write_torch_zip(const std::string & path, const std::vector<TensorToWrite> & tensors, const TorchZipOptions & opts) {
    ZipWriter z(path, opts.force_zip64);
    const std::string pfx = opts.archive_name + "/";
    z.add_bytes(pfx + "data.pkl", state_dict_pickle(tensors));
    z.add_bytes(pfx + "byteorder", "little");
    for (size_t k = 0; k < tensors.size(); ++k) z.add_tensor(pfx + "data/" + std::to_string(k), tensors[k]);
    z.add_bytes(pfx + "version", "3\n");
    z.finish();
}

}  // namespace visionllm::io
