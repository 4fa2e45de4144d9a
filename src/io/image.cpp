// Image decoding with OpenCV's imgcodecs (the only file that uses OpenCV). Before handing bytes to OpenCV we
// identify the format from its magic bytes and read the dimensions from its header, so unsupported files,
// absurd sizes and truncated JPEGs (which libjpeg would silently pad with gray) get clear errors first.
#include "io/image.h"

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "visionllm/error.h"

namespace visionllm::io {

namespace {

enum class Format { Jpeg, Png, Bmp, WebP };

const char * format_name(Format f) {
    switch (f) {
        case Format::Jpeg: return "JPEG";
        case Format::Png: return "PNG";
        case Format::Bmp: return "BMP";
        case Format::WebP: return "WebP";
    }
    return "?";
}

std::string quoted(const std::string & what) { return "image '" + what + "'"; }

uint32_t be16(const uint8_t * p) { return uint32_t(p[0]) << 8 | p[1]; }
uint32_t be32(const uint8_t * p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
uint32_t le16(const uint8_t * p) { return uint32_t(p[1]) << 8 | p[0]; }
uint32_t le24(const uint8_t * p) { return uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]; }
uint32_t le32(const uint8_t * p) { return uint32_t(p[3]) << 24 | uint32_t(p[2]) << 16 | uint32_t(p[1]) << 8 | p[0]; }

void check_dims(const std::string & what, int64_t w, int64_t h) {
    if (w <= 0 || h <= 0) fail(quoted(what), ": invalid size ", w, "x", h, " (corrupt header?)");
    if (w > kMaxImageSide || h > kMaxImageSide || w * h > kMaxImagePixels)
        fail(quoted(what), ": ", w, "x", h, " pixels is too large (at most ", kMaxImageSide, " per side and ",
             kMaxImagePixels, " pixels in all)");
}

// the format from the first bytes; anything else is an error that says what the file looks like
Format sniff(const std::vector<uint8_t> & b, const std::string & what) {
    const size_t n = b.size();
    auto starts = [&](const char * magic, size_t len, size_t at = 0) {
        return n >= at + len && std::memcmp(b.data() + at, magic, len) == 0;
    };
    if (starts("\xFF\xD8\xFF", 3)) return Format::Jpeg;
    if (starts("\x89PNG\r\n\x1A\n", 8)) return Format::Png;
    if (starts("BM", 2)) return Format::Bmp;
    if (starts("RIFF", 4) && starts("WEBP", 4, 8)) return Format::WebP;
    const char * expected = " (supported: JPEG, PNG, BMP, WebP)";
    if (starts("GIF8", 4)) fail(quoted(what), ": GIF images are not supported", expected);
    if (starts("II*\0", 4) || starts("MM\0*", 4)) fail(quoted(what), ": TIFF images are not supported", expected);
    if (n >= 12 && std::memcmp(b.data() + 4, "ftyp", 4) == 0)
        fail(quoted(what), ": HEIF/AVIF images are not supported", expected);
    size_t printable = 0, shown = std::min<size_t>(n, 64);
    for (size_t i = 0; i < shown; ++i)
        printable += (b[i] >= 0x20 && b[i] < 0x7F) || b[i] == '\n' || b[i] == '\r' || b[i] == '\t';
    if (shown > 0 && printable == shown) fail(quoted(what), ": not an image (the data looks like text)", expected);
    std::string hex;
    for (size_t i = 0; i < std::min<size_t>(n, 8); ++i) {
        char buf[4];
        std::snprintf(buf, sizeof buf, "%02x", b[i]);
        hex += (i ? " " : "") + std::string(buf);
    }
    fail(quoted(what), ": unrecognised image format (starts with ", hex, ")", expected);
}

// width and height from a JPEG's SOF marker; also checks that an end-of-image marker follows the first scan
// (libjpeg decodes a truncated file "successfully", padding the missing rows with gray)
void jpeg_header(const std::vector<uint8_t> & b, const std::string & what, int64_t & w, int64_t & h) {
    const size_t n = b.size();
    size_t p = 2;
    bool have_sof = false;
    auto truncated = [&] { fail(quoted(what), ": truncated or corrupt JPEG header"); };
    while (true) {
        if (p >= n) truncated();
        if (b[p] != 0xFF) fail(quoted(what), ": corrupt JPEG (no marker at byte ", p, ")");
        while (p < n && b[p] == 0xFF) ++p;
        if (p >= n) truncated();
        const uint8_t m = b[p++];
        if (m == 0xD8 || m == 0x01 || (m >= 0xD0 && m <= 0xD7)) continue;  // markers without a length
        if (m == 0xD9) fail(quoted(what), ": corrupt JPEG (end of image before any scan)");
        if (p + 2 > n) truncated();
        const size_t len = be16(&b[p]);
        if (len < 2) fail(quoted(what), ": corrupt JPEG (marker length ", len, ")");
        const bool sof = m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC;
        if (sof) {
            if (len < 7 || p + 7 > n) truncated();
            h = be16(&b[p + 3]);
            w = be16(&b[p + 5]);
            have_sof = true;
        }
        if (m == 0xDA) {  // start of scan: entropy-coded data follows
            if (!have_sof) fail(quoted(what), ": corrupt JPEG (scan before the frame header)");
            p += len;
            break;
        }
        p += len;
    }
    // in entropy-coded data 0xFF is always followed by 0x00 or a marker, so FF D9 is the real end of image
    for (size_t i = p; i + 1 < n; ++i)
        if (b[i] == 0xFF && b[i + 1] == 0xD9) return;
    fail(quoted(what), ": truncated JPEG (no end-of-image marker; the file is cut short)");
}

void header_dims(const std::vector<uint8_t> & b, Format f, const std::string & what, int64_t & w, int64_t & h) {
    const size_t n = b.size();
    auto truncated = [&] { fail(quoted(what), ": truncated or corrupt ", format_name(f), " header"); };
    switch (f) {
        case Format::Jpeg: jpeg_header(b, what, w, h); break;
        case Format::Png:
            if (n < 33 || std::memcmp(&b[12], "IHDR", 4) != 0) truncated();
            w = be32(&b[16]);
            h = be32(&b[20]);
            break;
        case Format::Bmp: {
            if (n < 30) truncated();
            const uint32_t hsize = le32(&b[14]);
            if (hsize == 12) {
                w = le16(&b[18]);
                h = le16(&b[20]);
            } else if (hsize >= 40) {
                if (n < 34) truncated();
                w = int32_t(le32(&b[18]));
                h = int32_t(le32(&b[22]));
                if (h < 0) h = -h;  // top-down rows
                const uint32_t bpp = le16(&b[28]), compression = le32(&b[30]), offset = le32(&b[10]);
                // uncompressed pixel data must all be there (OpenCV would leave the missing rows undefined)
                if ((compression == 0 || compression == 3) && w > 0 && h > 0 && w <= kMaxImageSide && h <= kMaxImageSide &&
                    bpp > 0 && bpp <= 32) {
                    const uint64_t stride = (uint64_t(w) * bpp + 31) / 32 * 4;
                    if (uint64_t(offset) + stride * uint64_t(h) > n)
                        fail(quoted(what), ": truncated BMP (", n, " bytes, the pixel data needs ",
                             uint64_t(offset) + stride * uint64_t(h), ")");
                }
            } else {
                fail(quoted(what), ": corrupt BMP (header size ", hsize, ")");
            }
            break;
        }
        case Format::WebP: {
            if (n < 30) truncated();
            if (uint64_t(le32(&b[4])) + 8 > n)
                fail(quoted(what), ": truncated WebP (", n, " bytes, the RIFF header says ", uint64_t(le32(&b[4])) + 8, ")");
            if (std::memcmp(&b[12], "VP8 ", 4) == 0) {
                if (b[23] != 0x9D || b[24] != 0x01 || b[25] != 0x2A) truncated();
                w = le16(&b[26]) & 0x3FFF;
                h = le16(&b[28]) & 0x3FFF;
            } else if (std::memcmp(&b[12], "VP8L", 4) == 0) {
                if (b[20] != 0x2F) truncated();
                const uint32_t bits = le32(&b[21]);
                w = (bits & 0x3FFF) + 1;
                h = ((bits >> 14) & 0x3FFF) + 1;
            } else if (std::memcmp(&b[12], "VP8X", 4) == 0) {
                w = int64_t(le24(&b[24])) + 1;
                h = int64_t(le24(&b[27])) + 1;
            } else {
                fail(quoted(what), ": corrupt WebP (unknown first chunk)");
            }
            break;
        }
    }
    check_dims(what, w, h);
}

// checks the bytes, then decodes them with OpenCV `flags`; never returns an empty Mat
cv::Mat decode_mat(const std::vector<uint8_t> & bytes, const std::string & what, int flags) {
    if (bytes.empty()) fail(quoted(what), ": empty file (0 bytes)");
    const Format f = sniff(bytes, what);
    int64_t w = 0, h = 0;
    header_dims(bytes, f, what, w, h);
    cv::Mat m;
    try {
        const cv::Mat buf(1, int(bytes.size()), CV_8U, const_cast<uint8_t *>(bytes.data()));
        m = cv::imdecode(buf, flags);
    } catch (const cv::Exception & e) {
        fail(quoted(what), ": cannot decode the ", format_name(f), " data: ", e.err);
    } catch (const std::exception & e) {
        fail(quoted(what), ": cannot decode the ", format_name(f), " data: ", e.what());
    }
    if (m.empty() || m.cols <= 0 || m.rows <= 0)
        fail(quoted(what), ": corrupt or truncated ", format_name(f), " data (", w, "x", h,
             " in the header, but it does not decode)");
    check_dims(what, m.cols, m.rows);
    return m;
}

std::vector<uint8_t> read_bytes(const std::string & path) {
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) {
        if (errno == ENOENT || errno == ENOTDIR) fail(quoted(path), ": no such file");
        fail(quoted(path), ": cannot access: ", std::strerror(errno));
    }
    if (S_ISDIR(st.st_mode)) fail(quoted(path), ": is a directory, not an image file");
    if (!S_ISREG(st.st_mode)) fail(quoted(path), ": not a regular file");
    if (st.st_size == 0) fail(quoted(path), ": empty file (0 bytes)");
    FILE * fp = std::fopen(path.c_str(), "rb");
    if (!fp) fail(quoted(path), ": cannot open: ", std::strerror(errno));
    std::vector<uint8_t> bytes(size_t(st.st_size));
    const size_t got = std::fread(bytes.data(), 1, bytes.size(), fp);
    const bool err = std::ferror(fp) != 0;
    std::fclose(fp);
    if (err || got != bytes.size()) fail(quoted(path), ": read error (", got, " of ", bytes.size(), " bytes)");
    return bytes;
}

// an 8-bit BGR Mat -> RGB Image
Image rgb_from_bgr(const cv::Mat & m) {
    VLLM_CHECK(m.type() == CV_8UC3, "internal: expected an 8-bit BGR image from the decoder, got type ", m.type());
    Image img;
    img.width = m.cols;
    img.height = m.rows;
    img.channels = 3;
    img.data.resize(size_t(img.width * img.height * 3));
    for (int64_t y = 0; y < img.height; ++y) {
        const uint8_t * s = m.ptr<uint8_t>(int(y));
        uint8_t * d = img.row(y);
        for (int64_t x = 0; x < img.width; ++x) {
            d[3 * x + 0] = s[3 * x + 2];
            d[3 * x + 1] = s[3 * x + 1];
            d[3 * x + 2] = s[3 * x + 0];
        }
    }
    return img;
}

}  // namespace

Image decode_image(const std::vector<uint8_t> & bytes, const std::string & what, bool apply_exif) {
    // IMREAD_COLOR: 8 bits (16-bit data keeps its high byte), gray replicated, alpha dropped, palette expanded
    const int flags = apply_exif ? cv::IMREAD_COLOR : (cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    return rgb_from_bgr(decode_mat(bytes, what, flags));
}

Image read_image(const std::string & path, bool apply_exif) { return decode_image(read_bytes(path), path, apply_exif); }

Image read_mask(const std::string & path) {
    const cv::Mat m = decode_mat(read_bytes(path), path, cv::IMREAD_UNCHANGED);
    const int depth = m.depth(), ch = m.channels();
    if (depth != CV_8U && depth != CV_16U)
        fail(quoted(path), ": unsupported mask sample type (expected 8- or 16-bit integers)");
    if (ch < 1 || ch > 4) fail(quoted(path), ": unsupported mask with ", ch, " channels");
    const int colours = ch >= 3 ? 3 : 1;  // gray(+alpha) or colour(+alpha); alpha is ignored
    Image img;
    img.width = m.cols;
    img.height = m.rows;
    img.channels = 1;
    img.data.resize(size_t(img.width * img.height));
    for (int64_t y = 0; y < img.height; ++y) {
        uint8_t * d = img.row(y);
        for (int64_t x = 0; x < img.width; ++x) {
            uint32_t v = 0;
            for (int c = 0; c < colours; ++c) {
                const uint32_t s = depth == CV_8U ? m.ptr<uint8_t>(int(y))[x * ch + c] : m.ptr<uint16_t>(int(y))[x * ch + c];
                v = std::max(v, s);
            }
            if (depth == CV_16U && v != 0) v = std::max<uint32_t>(1, v >> 8);
            d[x] = uint8_t(v);
        }
    }
    return img;
}

Image image_from_rgb(const uint8_t * rgb, int64_t width, int64_t height) {
    if (width <= 0 || height <= 0) fail("image_from_rgb: invalid size ", width, "x", height);
    if (width > kMaxImageSide || height > kMaxImageSide || width * height > kMaxImagePixels)
        fail("image_from_rgb: ", width, "x", height, " pixels is too large (at most ", kMaxImageSide, " per side and ",
             kMaxImagePixels, " pixels in all)");
    if (!rgb) fail("image_from_rgb: null pixel pointer for a ", width, "x", height, " image");
    Image img;
    img.width = width;
    img.height = height;
    img.channels = 3;
    img.data.assign(rgb, rgb + width * height * 3);
    return img;
}

void write_png(const std::string & path, const Image & img) {
    if (img.channels != 1 && img.channels != 3)
        fail("write_png '", path, "': expected 1 or 3 channels, got ", img.channels);
    if (img.width <= 0 || img.height <= 0 || img.width > kMaxImageSide || img.height > kMaxImageSide)
        fail("write_png '", path, "': invalid size ", img.width, "x", img.height);
    if (img.data.size() != size_t(img.width * img.height * img.channels))
        fail("write_png '", path, "': ", img.data.size(), " bytes of pixel data for a ", img.width, "x", img.height, "x",
             img.channels, " image");
    cv::Mat m(int(img.height), int(img.width), img.channels == 3 ? CV_8UC3 : CV_8UC1);
    for (int64_t y = 0; y < img.height; ++y) {
        const uint8_t * s = img.row(y);
        uint8_t * d = m.ptr<uint8_t>(int(y));
        if (img.channels == 1) {
            std::memcpy(d, s, size_t(img.width));
        } else {
            for (int64_t x = 0; x < img.width; ++x) {
                d[3 * x + 0] = s[3 * x + 2];
                d[3 * x + 1] = s[3 * x + 1];
                d[3 * x + 2] = s[3 * x + 0];
            }
        }
    }
    std::vector<uint8_t> buf;
    try {
        if (!cv::imencode(".png", m, buf)) fail("write_png '", path, "': PNG encoding failed");
    } catch (const cv::Exception & e) {
        fail("write_png '", path, "': PNG encoding failed: ", e.err);
    }
    FILE * fp = std::fopen(path.c_str(), "wb");
    if (!fp) fail("write_png '", path, "': cannot create: ", std::strerror(errno));
    const size_t put = std::fwrite(buf.data(), 1, buf.size(), fp);
    const bool closed = std::fclose(fp) == 0;
    if (put != buf.size() || !closed) fail("write_png '", path, "': write error");
}

}  // namespace visionllm::io
