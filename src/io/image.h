// Image files: decoding (JPEG, PNG, BMP, WebP) to 8-bit RGB or gray pixels in memory.
//
// Decoding is done by OpenCV's imgcodecs, inside image.cpp only; nothing here exposes OpenCV.
//
// RGB conversion follows PIL's Image.open(path).convert('RGB') (what VisionLLM v2 does):
//   - grayscale (with or without alpha) is replicated to R = G = B;
//   - an alpha channel is dropped, not composited onto a background (PIL's RGBA->RGB does the same);
//   - palette images are expanded through their palette (transparency ignored, as PIL does);
//   - 16-bit images keep their high byte (value >> 8). PIL does the same for 16-bit RGB PNGs, but a 16-bit
//     *grayscale* PNG opens in PIL as mode "I;16" and convert('RGB') clips it to 255 instead of scaling: the one
//     known difference.
// EXIF orientation: applied when `apply_exif` is true (the default: a photo taken sideways comes out upright).
// PIL's Image.open does NOT apply it (that needs ImageOps.exif_transpose), so the reference pipeline sees the
// stored pixel order: pass apply_exif = false to reproduce the reference exactly on such files.
// JPEG decoding uses the system libjpeg(-turbo) while PIL bundles its own: the decoded pixels can differ by a
// level or so on some files (lossless formats decode identically).
//
// Errors (visionllm::Error) name the path (or `what` for in-memory data) and say what is wrong: missing file,
// unreadable file, directory, empty file, unsupported format (GIF, TIFF, text...), corrupt or truncated data (a JPEG
// without its end-of-image marker counts as truncated: libjpeg would pad the missing rows with gray), and
// dimensions beyond kMaxImageSide per side or kMaxImagePixels in total (checked from the file's header before any
// pixel memory is allocated, so a hostile file cannot exhaust memory).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace visionllm::io {

// largest accepted image: per side, and in total
constexpr int64_t kMaxImageSide = 32768;
constexpr int64_t kMaxImagePixels = int64_t(1) << 28;

struct Image {                                     // 8-bit, interleaved, row-major
    int64_t width = 0, height = 0, channels = 0;  // channels 3 (RGB) or 1 (gray)
    std::vector<uint8_t> data;                     // height * width * channels
    uint8_t * row(int64_t y) { return data.data() + y * width * channels; }
    const uint8_t * row(int64_t y) const { return data.data() + y * width * channels; }
    bool empty() const { return width == 0 || height == 0; }
};

// an image file -> 3-channel RGB
Image read_image(const std::string & path, bool apply_exif = true);
// encoded file bytes -> 3-channel RGB; `what` names the data in errors (a path, "request image #2", ...)
Image decode_image(const std::vector<uint8_t> & bytes, const std::string & what, bool apply_exif = true);
// a region mask file (PNG, BMP, ...) -> 1 channel, 8-bit; any nonzero pixel is inside. Colour masks are reduced with
// the maximum over R, G, B (so any nonzero colour counts; alpha is ignored); 16-bit values v > 0 become
// max(1, v >> 8) so nothing inside is lost. EXIF orientation is not applied.
Image read_mask(const std::string & path);
// an image from raw interleaved RGB bytes (callers that already have pixels); checks the sizes
Image image_from_rgb(const uint8_t * rgb, int64_t width, int64_t height);
// lossless PNG of a 1- or 3-channel (RGB) image (tests and tools)
void write_png(const std::string & path, const Image & img);

}  // namespace visionllm::io
