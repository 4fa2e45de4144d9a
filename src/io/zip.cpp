#include "io/zip.h"

#include "io/bytes.h"
#include "visionllm/error.h"

namespace visionllm::io {

namespace {
constexpr uint32_t k_sig_local = 0x04034b50;
constexpr uint32_t k_sig_central = 0x02014b50;
constexpr uint32_t k_sig_eocd = 0x06054b50;
constexpr uint32_t k_sig_eocd64 = 0x06064b50;
constexpr uint32_t k_sig_eocd64_loc = 0x07064b50;
constexpr size_t k_eocd_size = 22;
}  // namespace

ZipReader::ZipReader(const uint8_t * data, size_t size, std::string what) : what_(std::move(what)) {
    if (size < k_eocd_size) fail(what_, ": not a zip archive (file is only ", size, " bytes; truncated?)");

    // the end-of-central-directory record sits in the last 22 + 65535 bytes
    size_t lo = size > k_eocd_size + 0xFFFF ? size - k_eocd_size - 0xFFFF : 0;
    size_t eocd = SIZE_MAX;
    for (size_t p = size - k_eocd_size + 1; p-- > lo;) {
        if (rd_le(data + p, 4) == k_sig_eocd && p + k_eocd_size + rd_le(data + p + 20, 2) <= size) {
            eocd = p;
            break;
        }
    }
    if (eocd == SIZE_MAX) fail(what_, ": not a zip archive (no end-of-central-directory record; truncated file?)");

    ByteReader r(data, size, what_);
    r.seek(eocd + 4);
    uint64_t disk = r.u(2), cd_disk = r.u(2);
    uint64_t n_disk = r.u(2), n_total = r.u(2);
    uint64_t cd_size = r.u(4), cd_off = r.u(4);
    (void) n_disk;
    if (n_total == 0xFFFF || cd_size == 0xFFFFFFFF || cd_off == 0xFFFFFFFF) {
        if (eocd < 20) fail(what_, ": zip64 archive without a zip64 locator (corrupt)");
        r.seek(eocd - 20);
        if (r.u(4) != k_sig_eocd64_loc) fail(what_, ": zip64 archive without a zip64 locator (corrupt)");
        r.u(4);
        uint64_t eocd64 = r.u(8);
        r.seek(eocd64);
        if (r.u(4) != k_sig_eocd64) fail(what_, ": zip64 end-of-central-directory record not found at offset ", eocd64);
        r.u(8);  // record size
        r.u(2);  // version made by
        r.u(2);  // version needed
        disk = r.u(4);
        cd_disk = r.u(4);
        r.u(8);  // entries on this disk
        n_total = r.u(8);
        cd_size = r.u(8);
        cd_off = r.u(8);
    }
    if (disk != 0 || cd_disk != 0) fail(what_, ": multi-part zip archives are not supported");
    if (add_checked(cd_off, cd_size, what_) > size)
        fail(what_, ": central directory (offset ", cd_off, ", ", cd_size, " bytes) lies beyond the end of the file (",
             size, " bytes); truncated?");
    // each central record is at least 46 bytes: bounds the entry count before reserving
    if (n_total > cd_size / 46) fail(what_, ": central directory claims ", n_total, " entries in ", cd_size, " bytes (corrupt)");

    ByteReader cd(data + cd_off, size_t(cd_size), what_ + " (central directory)");
    entries_.reserve(size_t(n_total));
    for (uint64_t i = 0; i < n_total; ++i) {
        if (cd.u(4) != k_sig_central) fail(what_, ": central directory entry ", i, " has a bad signature (corrupt)");
        cd.u(2);  // made by
        cd.u(2);  // needed
        uint64_t flags = cd.u(2);
        ZipEntry e;
        e.method = uint16_t(cd.u(2));
        cd.u(4);  // time, date
        e.crc32 = uint32_t(cd.u(4));
        uint64_t csize = cd.u(4), usize = cd.u(4);
        uint64_t nlen = cd.u(2), xlen = cd.u(2), clen = cd.u(2);
        cd.u(2);  // disk start
        cd.u(2);  // internal attrs
        cd.u(4);  // external attrs
        uint64_t lho = cd.u(4);
        e.name = cd.str(nlen);
        ByteReader extra(cd.take(xlen), size_t(xlen), what_ + ": extra field of '" + e.name + "'");
        cd.take(clen);
        while (!extra.at_end()) {
            uint64_t id = extra.u(2), len = extra.u(2);
            ByteReader f(extra.take(len), size_t(len), extra.what());
            if (id != 0x0001) continue;
            if (usize == 0xFFFFFFFF) usize = f.u(8);
            if (csize == 0xFFFFFFFF) csize = f.u(8);
            if (lho == 0xFFFFFFFF) lho = f.u(8);
        }
        if (flags & 1) fail(what_, ": entry '", e.name, "' is encrypted");
        if (e.method == 0 && csize != usize)
            fail(what_, ": entry '", e.name, "' is stored but its sizes differ (", csize, " vs ", usize, ")");
        e.size = csize;

        // the local header repeats name and has its own extra field (torch pads it for alignment)
        r.seek(lho);
        if (r.u(4) != k_sig_local) fail(what_, ": local header of '", e.name, "' not found at offset ", lho, " (corrupt)");
        r.seek(lho + 26);
        uint64_t lnlen = r.u(2), lxlen = r.u(2);
        e.data_offset = lho + 30 + lnlen + lxlen;
        if (add_checked(e.data_offset, e.size, what_) > size)
            fail(what_, ": entry '", e.name, "' (", e.size, " bytes at offset ", e.data_offset,
                 ") runs past the end of the file (", size, " bytes); truncated?");
        if (!index_.emplace(e.name, entries_.size()).second) fail(what_, ": duplicate entry '", e.name, "'");
        entries_.push_back(std::move(e));
    }
}

const ZipEntry * ZipReader::find(const std::string & name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &entries_[it->second];
}

const ZipEntry & ZipReader::stored(const std::string & name) const {
    const ZipEntry * e = find(name);
    if (e == nullptr) fail(what_, ": missing archive entry '", name, "'");
    if (e->method != 0)
        fail(what_, ": entry '", name, "' is compressed (method ", e->method,
             "); torch checkpoints store entries uncompressed, re-save it with torch.save");
    return *e;
}

}  // namespace visionllm::io
