// Image files: every supported format round-trips (fixtures written with OpenCV in a temp dir), PIL-like RGB
// conversion (gray replicated, alpha dropped, 16 bits -> high byte), EXIF orientation on and off, masks, and clear
// errors naming the file for missing / empty / truncated / non-image / oversized inputs.
#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cstring>
#include <functional>

#include "common/test_util.h"
#include "io/image.h"

using namespace visionllm;
using namespace visionllm::test;

namespace {

constexpr int kW = 23, kH = 17;

// a pattern with distinct values per channel and position; returned as RGB and as OpenCV's BGR
uint8_t pattern(int x, int y, int c) { return uint8_t((x * 11 + y * 7 + c * 85) % 256); }

cv::Mat bgr_pattern(int w = kW, int h = kH) {
    cv::Mat m(h, w, CV_8UC3);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x)
            for (int c = 0; c < 3; ++c) m.ptr<uint8_t>(y)[x * 3 + (2 - c)] = pattern(x, y, c);  // RGB c -> BGR 2-c
    return m;
}

std::vector<uint8_t> encode(const std::string & ext, const cv::Mat & m, const std::vector<int> & params = {}) {
    std::vector<uint8_t> buf;
    EXPECT_TRUE(cv::imencode(ext, m, buf, params)) << ext;
    return buf;
}

std::string bytes_str(const std::vector<uint8_t> & b) { return std::string(b.begin(), b.end()); }

void expect_pattern(const io::Image & img, const std::string & what, int tolerance = 0) {
    ASSERT_EQ(img.width, kW) << what;
    ASSERT_EQ(img.height, kH) << what;
    ASSERT_EQ(img.channels, 3) << what;
    ASSERT_EQ(img.data.size(), size_t(kW * kH * 3)) << what;
    int worst = 0;
    for (int y = 0; y < kH; ++y)
        for (int x = 0; x < kW; ++x)
            for (int c = 0; c < 3; ++c) worst = std::max(worst, std::abs(int(img.row(y)[x * 3 + c]) - int(pattern(x, y, c))));
    EXPECT_LE(worst, tolerance) << what;
}

// the message of the Error `fn` throws; fails the test when it does not mention `path` and `words`
void expect_error(const std::function<void()> & fn, const std::string & path, const std::string & words) {
    const std::string e = error_of(fn);
    ASSERT_NE(e, "") << "no error for " << path;
    EXPECT_NE(e.find(path), std::string::npos) << e;
    EXPECT_NE(e.find(words), std::string::npos) << "expected '" << words << "' in: " << e;
}

// an APP1 Exif segment holding only IFD0 with Orientation = `orientation` (little-endian TIFF)
std::vector<uint8_t> exif_app1(uint16_t orientation) {
    std::vector<uint8_t> s = {0xFF, 0xE1, 0, 34, 'E', 'x', 'i', 'f', 0, 0,  // marker, length 34, "Exif\0\0"
                              'I', 'I', 42, 0, 8, 0, 0, 0,                 // TIFF header, IFD0 at 8
                              1, 0,                                        // one entry
                              0x12, 0x01, 3, 0, 1, 0, 0, 0,                // tag 0x0112 SHORT x1
                              uint8_t(orientation), 0, 0, 0,               // value
                              0, 0, 0, 0};                                 // no next IFD
    return s;
}

// a JPEG of a 32x16 image, left half red and right half blue, with an Exif orientation spliced in after SOI
std::vector<uint8_t> oriented_jpeg(uint16_t orientation) {
    cv::Mat m(16, 32, CV_8UC3, cv::Scalar(0, 0, 255));              // red (BGR)
    m(cv::Rect(16, 0, 16, 16)).setTo(cv::Scalar(255, 0, 0));      // blue
    std::vector<uint8_t> j = encode(".jpg", m, {cv::IMWRITE_JPEG_QUALITY, 95});
    const std::vector<uint8_t> app1 = exif_app1(orientation);
    j.insert(j.begin() + 2, app1.begin(), app1.end());
    return j;
}

bool is_red(const io::Image & img, int x, int y) {
    const uint8_t * p = img.row(y) + x * 3;
    return p[0] > 200 && p[1] < 60 && p[2] < 60;
}
bool is_blue(const io::Image & img, int x, int y) {
    const uint8_t * p = img.row(y) + x * 3;
    return p[2] > 200 && p[0] < 60 && p[1] < 60;
}

}  // namespace

TEST(Image, LosslessFormatsRoundTripExactly) {
    TempDir d("img_formats");
    const cv::Mat m = bgr_pattern();
    const std::vector<std::pair<std::string, std::vector<int>>> formats = {
        {".png", {}}, {".bmp", {}}, {".webp", {cv::IMWRITE_WEBP_QUALITY, 101}}};  // quality > 100: lossless WebP
    for (const auto & [ext, params] : formats) {
        const std::vector<uint8_t> bytes = encode(ext, m, params);
        write_file(d.file("a" + ext), bytes_str(bytes));
        expect_pattern(io::read_image(d.file("a" + ext)), ext);
        expect_pattern(io::decode_image(bytes, "memory" + ext), ext + " (bytes)");
    }
}

TEST(Image, JpegDecodes) {
    TempDir d("img_jpeg");
    // a smooth image so that JPEG's loss stays small
    cv::Mat m(kH, kW, CV_8UC3);
    for (int y = 0; y < kH; ++y)
        for (int x = 0; x < kW; ++x) m.at<cv::Vec3b>(y, x) = cv::Vec3b(uint8_t(10 * x), uint8_t(100), uint8_t(12 * y));
    write_file(d.file("a.jpg"), bytes_str(encode(".jpg", m, {cv::IMWRITE_JPEG_QUALITY, 100})));
    const io::Image img = io::read_image(d.file("a.jpg"));
    ASSERT_EQ(img.width, kW);
    ASSERT_EQ(img.height, kH);
    ASSERT_EQ(img.channels, 3);
    double err = 0;
    for (int y = 0; y < kH; ++y)
        for (int x = 0; x < kW; ++x) {
            const uint8_t * p = img.row(y) + x * 3;  // RGB, the Mat is BGR
            err += std::abs(p[0] - 12 * y) + std::abs(p[1] - 100) + std::abs(p[2] - 10 * x);
        }
    EXPECT_LT(err / (kW * kH * 3), 3.0);
}

TEST(Image, GrayBecomesRgb) {
    TempDir d("img_gray");
    cv::Mat g(kH, kW, CV_8UC1);
    for (int y = 0; y < kH; ++y)
        for (int x = 0; x < kW; ++x) g.at<uint8_t>(y, x) = pattern(x, y, 0);
    for (const std::string ext : {".png", ".bmp"}) {
        write_file(d.file("g" + ext), bytes_str(encode(ext, g)));
        const io::Image img = io::read_image(d.file("g" + ext));
        ASSERT_EQ(img.channels, 3) << ext;
        for (int y = 0; y < kH; ++y)
            for (int x = 0; x < kW; ++x)
                for (int c = 0; c < 3; ++c) ASSERT_EQ(img.row(y)[x * 3 + c], pattern(x, y, 0)) << ext << " " << x << "," << y;
    }
}

TEST(Image, AlphaIsDroppedNotComposited) {
    TempDir d("img_rgba");
    cv::Mat m(kH, kW, CV_8UC4);
    for (int y = 0; y < kH; ++y)
        for (int x = 0; x < kW; ++x) {
            uint8_t * p = m.ptr<uint8_t>(y) + x * 4;
            for (int c = 0; c < 3; ++c) p[2 - c] = pattern(x, y, c);
            p[3] = uint8_t((x * 40) % 256);  // alpha 0 in column 0: colour must survive untouched
        }
    write_file(d.file("a.png"), bytes_str(encode(".png", m)));
    expect_pattern(io::read_image(d.file("a.png")), "RGBA png");
    write_file(d.file("a.webp"), bytes_str(encode(".webp", m, {cv::IMWRITE_WEBP_QUALITY, 101})));
    const io::Image w = io::read_image(d.file("a.webp"));
    EXPECT_EQ(w.channels, 3);
    EXPECT_EQ(w.width, kW);
}

TEST(Image, SixteenBitKeepsTheHighByte) {
    TempDir d("img_16");
    cv::Mat m(kH, kW, CV_16UC3);
    for (int y = 0; y < kH; ++y)
        for (int x = 0; x < kW; ++x)
            for (int c = 0; c < 3; ++c) m.ptr<uint16_t>(y)[x * 3 + (2 - c)] = uint16_t(pattern(x, y, c) * 256 + (x * 13 % 256));
    write_file(d.file("a.png"), bytes_str(encode(".png", m)));
    expect_pattern(io::read_image(d.file("a.png")), "16-bit png");
}

TEST(Image, ExifOrientation) {
    TempDir d("img_exif");
    // 6: the stored image must be turned 90 degrees clockwise: left (red) goes to the top
    write_file(d.file("six.jpg"), bytes_str(oriented_jpeg(6)));
    const io::Image r = io::read_image(d.file("six.jpg"));
    ASSERT_EQ(r.width, 16);
    ASSERT_EQ(r.height, 32);
    EXPECT_TRUE(is_red(r, 8, 4));
    EXPECT_TRUE(is_blue(r, 8, 27));
    // apply_exif = false: the stored pixels, as PIL's Image.open gives them
    const io::Image raw = io::read_image(d.file("six.jpg"), /*apply_exif=*/false);
    ASSERT_EQ(raw.width, 32);
    ASSERT_EQ(raw.height, 16);
    EXPECT_TRUE(is_red(raw, 4, 8));
    EXPECT_TRUE(is_blue(raw, 27, 8));
    // 3: turned 180 degrees, red ends on the right
    const io::Image half = io::decode_image(oriented_jpeg(3), "three.jpg");
    ASSERT_EQ(half.width, 32);
    EXPECT_TRUE(is_blue(half, 4, 8));
    EXPECT_TRUE(is_red(half, 27, 8));
    // 1: as stored
    const io::Image one = io::decode_image(oriented_jpeg(1), "one.jpg");
    EXPECT_TRUE(is_red(one, 4, 8));
}

TEST(Image, Masks) {
    TempDir d("img_mask");
    cv::Mat g(8, 10, CV_8UC1, cv::Scalar(0));
    g.at<uint8_t>(2, 3) = 255;
    g.at<uint8_t>(5, 7) = 1;
    write_file(d.file("m.png"), bytes_str(encode(".png", g)));
    io::Image m = io::read_mask(d.file("m.png"));
    ASSERT_EQ(m.channels, 1);
    ASSERT_EQ(m.width, 10);
    ASSERT_EQ(m.height, 8);
    EXPECT_EQ(m.row(2)[3], 255);
    EXPECT_EQ(m.row(5)[7], 1);
    EXPECT_EQ(m.row(0)[0], 0);
    // colour: a pure dark blue pixel would vanish in a luma conversion; any nonzero channel counts here
    cv::Mat c(8, 10, CV_8UC3, cv::Scalar(0, 0, 0));
    c.at<cv::Vec3b>(4, 4) = cv::Vec3b(1, 0, 0);
    write_file(d.file("c.bmp"), bytes_str(encode(".bmp", c)));
    m = io::read_mask(d.file("c.bmp"));
    EXPECT_EQ(m.row(4)[4], 1);
    EXPECT_EQ(m.row(4)[5], 0);
    // 16-bit: small nonzero values stay nonzero
    cv::Mat w(8, 10, CV_16UC1, cv::Scalar(0));
    w.at<uint16_t>(1, 1) = 1;
    w.at<uint16_t>(1, 2) = 65535;
    write_file(d.file("w.png"), bytes_str(encode(".png", w)));
    m = io::read_mask(d.file("w.png"));
    EXPECT_EQ(m.row(1)[1], 1);
    EXPECT_EQ(m.row(1)[2], 255);
    EXPECT_EQ(m.row(1)[3], 0);
    expect_error([&] { io::read_mask(d.file("none.png")); }, d.file("none.png"), "no such file");
}

TEST(Image, FromRgbAndWritePng) {
    TempDir d("img_write");
    std::vector<uint8_t> rgb(size_t(kW * kH * 3));
    for (int y = 0; y < kH; ++y)
        for (int x = 0; x < kW; ++x)
            for (int c = 0; c < 3; ++c) rgb[size_t((y * kW + x) * 3 + c)] = pattern(x, y, c);
    const io::Image img = io::image_from_rgb(rgb.data(), kW, kH);
    expect_pattern(img, "image_from_rgb");
    io::write_png(d.file("o.png"), img);
    expect_pattern(io::read_image(d.file("o.png")), "write_png round trip");
    io::Image gray;
    gray.width = 5;
    gray.height = 4;
    gray.channels = 1;
    gray.data = std::vector<uint8_t>(20, 9);
    io::write_png(d.file("g.png"), gray);
    const io::Image back = io::read_mask(d.file("g.png"));
    EXPECT_EQ(back.data, gray.data);

    EXPECT_NE(error_of([&] { io::image_from_rgb(nullptr, 2, 2); }).find("null"), std::string::npos);
    EXPECT_NE(error_of([&] { io::image_from_rgb(rgb.data(), 0, 2); }).find("invalid size"), std::string::npos);
    EXPECT_NE(error_of([&] { io::image_from_rgb(rgb.data(), 40000, 2); }).find("too large"), std::string::npos);
    io::Image bad = gray;
    bad.channels = 2;
    expect_error([&] { io::write_png(d.file("b.png"), bad); }, d.file("b.png"), "channels");
    bad = gray;
    bad.data.resize(3);
    expect_error([&] { io::write_png(d.file("b.png"), bad); }, d.file("b.png"), "bytes");
    expect_error([&] { io::write_png(d.file("no/such/dir/x.png"), gray); }, d.file("no/such/dir/x.png"), "cannot create");
}

TEST(Image, FileErrorsNameThePath) {
    TempDir d("img_err");
    expect_error([&] { io::read_image(d.file("missing.jpg")); }, d.file("missing.jpg"), "no such file");
    expect_error([&] { io::read_image(d.path()); }, d.path(), "directory");
    write_file(d.file("empty.png"), "");
    expect_error([&] { io::read_image(d.file("empty.png")); }, d.file("empty.png"), "empty");
    write_file(d.file("notes.jpg"), "these are my holiday notes, not a picture\n");
    expect_error([&] { io::read_image(d.file("notes.jpg")); }, d.file("notes.jpg"), "text");
    write_file(d.file("anim.gif"), "GIF89a\x01\x00\x01\x00\x00\x00\x00;");
    expect_error([&] { io::read_image(d.file("anim.gif")); }, d.file("anim.gif"), "GIF");
    write_file(d.file("scan.tif"), std::string("II*\0\x08\0\0\0", 8));
    expect_error([&] { io::read_image(d.file("scan.tif")); }, d.file("scan.tif"), "TIFF");
    write_file(d.file("junk.png"), std::string("\x01\x02\x03\x04\xfe\xff\x00\x10", 8));
    expect_error([&] { io::read_image(d.file("junk.png")); }, d.file("junk.png"), "unrecognised");
    EXPECT_NE(error_of([&] { io::decode_image({}, "upload #3"); }).find("upload #3"), std::string::npos);
}

TEST(Image, TruncatedFilesAreErrors) {
    TempDir d("img_trunc");
    const cv::Mat m = bgr_pattern(64, 48);
    const std::vector<std::pair<std::string, std::vector<int>>> formats = {
        {".jpg", {cv::IMWRITE_JPEG_QUALITY, 90}}, {".png", {}}, {".bmp", {}}, {".webp", {cv::IMWRITE_WEBP_QUALITY, 80}}};
    for (const auto & [ext, params] : formats) {
        const std::vector<uint8_t> full = encode(ext, m, params);
        for (double frac : {0.6, 0.95}) {
            std::vector<uint8_t> cut(full.begin(), full.begin() + long(double(full.size()) * frac));
            const std::string path = d.file("cut" + std::to_string(int(frac * 100)) + ext);
            write_file(path, bytes_str(cut));
            const std::string e = error_of([&] { io::read_image(path); });
            EXPECT_NE(e.find(path), std::string::npos) << ext << " cut to " << frac << ": " << e;
            EXPECT_TRUE(e.find("truncated") != std::string::npos || e.find("corrupt") != std::string::npos)
                << ext << " cut to " << frac << ": " << e;
        }
        // only the signature and a few header bytes
        std::vector<uint8_t> head(full.begin(), full.begin() + 12);
        const std::string path = d.file("head" + ext);
        write_file(path, bytes_str(head));
        EXPECT_NE(error_of([&] { io::read_image(path); }).find(path), std::string::npos) << ext;
    }
}

TEST(Image, AbsurdDimensionsAreRefusedBeforeDecoding) {
    TempDir d("img_huge");
    const cv::Mat m = bgr_pattern();
    // PNG: IHDR width/height (big-endian) at bytes 16 and 20
    std::vector<uint8_t> png = encode(".png", m);
    png[16] = 0, png[17] = 0, png[18] = 0x9C, png[19] = 0x40;  // 40000
    write_file(d.file("wide.png"), bytes_str(png));
    expect_error([&] { io::read_image(d.file("wide.png")); }, d.file("wide.png"), "too large");
    png[18] = 0x40, png[19] = 0x00;                               // 16384 wide ...
    png[20] = 0, png[21] = 0, png[22] = 0x40, png[23] = 0x00;    // ... and 16384 high: 2^28 pixels is the limit, fine
    png[23] = 0x01;                                               // 16385 high: over
    write_file(d.file("big.png"), bytes_str(png));
    expect_error([&] { io::read_image(d.file("big.png")); }, d.file("big.png"), "too large");
    // JPEG: the SOF0 frame header's height and width
    std::vector<uint8_t> jpg = encode(".jpg", m);
    size_t sof = 0;
    for (size_t i = 2; i + 1 < jpg.size(); ++i)
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
            sof = i;
            break;
        }
    ASSERT_GT(sof, 0u);
    jpg[sof + 5] = 0xFF, jpg[sof + 6] = 0xF0;  // height 65520
    jpg[sof + 7] = 0xFF, jpg[sof + 8] = 0xF0;  // width 65520
    write_file(d.file("huge.jpg"), bytes_str(jpg));
    expect_error([&] { io::read_image(d.file("huge.jpg")); }, d.file("huge.jpg"), "too large");
    // BMP: int32 width and height at 18 and 22
    std::vector<uint8_t> bmp = encode(".bmp", m);
    bmp[18] = 0x00, bmp[19] = 0x00, bmp[20] = 0x01, bmp[21] = 0x00;  // 65536
    write_file(d.file("huge.bmp"), bytes_str(bmp));
    expect_error([&] { io::read_image(d.file("huge.bmp")); }, d.file("huge.bmp"), "too large");
    // zero size
    png = encode(".png", m);
    png[16] = png[17] = png[18] = png[19] = 0;
    write_file(d.file("zero.png"), bytes_str(png));
    expect_error([&] { io::read_image(d.file("zero.png")); }, d.file("zero.png"), "invalid size");
}
