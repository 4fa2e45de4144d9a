// CLIP input preprocessing as VisionLLM v2 does it (mm_utils.py::dynamic_preprocess, "anyres", then HF
// CLIPImageProcessor on every tile), reproduced bit for bit on the uint8 pixels:
//
//   image (RGB) -> grid (cols x rows) chosen by aspect ratio -> PIL bicubic resize to (S*cols, S*rows)
//   -> row-major S x S tiles -> + thumbnail (whole image resized to S x S) when there is more than one tile
//   -> per tile: resize shortest edge, centre crop, rescale 1/255, normalise with the CLIP mean/std
//   -> float32 [n_tiles, 3, S, S]
//
// The resize is Pillow's ImagingResample (libImaging/Resample.c, Pillow 4.3 to 12.x): separable, horizontal pass
// then vertical pass, 22-bit fixed-point coefficients, rounding and clipping to 8 bits after each pass. Pillow 13
// runs the vertical pass first when the height shrinks more than twice as much as the width, which changes pixels;
// we follow the older (and VisionLLM v2's 2024) behaviour. Goldens: tools/golden/preprocess.py.
//
// No OpenCV here: pixels come in and go out as io::Image.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/image.h"

namespace visionllm::vision {

// a tiling: cols tiles across (the reference's i, width), rows down (j, height)
struct Grid {
    int64_t cols = 1, rows = 1;
    int64_t tiles() const { return cols * rows; }
};

// largest max_tiles accepted (the reference enumerates O(max_tiles^3) candidates)
constexpr int64_t kMaxTiles = 64;

// The candidate grids in the reference's order: every (i, j) with 1 <= i*j <= max_tiles, collected in a Python set
// and stably sorted by i*j. Among grids with the same tile count the order is the set's iteration order, which this
// reproduces by simulating CPython's set (tuple hash of CPython >= 3.8, open addressing with 9 linear probes and
// perturbation, growth at 3/5 full to 4x the used count). For max_tiles 4: (1,1) (1,2) (2,1) (3,1) (1,3) (4,1)
// (1,4) (2,2). Checked against Python for max_tiles 1..24 (goldens).
std::vector<Grid> candidate_grids(int64_t max_tiles);

// dynamic_preprocess's choice (find_closest_aspect_ratio): the candidate whose i/j is closest to width/height (in
// doubles, as Python computes it); on an exact tie in |difference| the later candidate wins only if
// width*height > 0.5 * image_size^2 * i*j. So a square image gets 2x2 tiles once its area exceeds 2 * image_size^2.
Grid choose_grid(int64_t width, int64_t height, int64_t image_size, int64_t max_tiles);

// PIL Image.resize((width, height), Image.BICUBIC), bit-exact for 8-bit 1-channel (L) and 3-channel (RGB) images.
// An unchanged size returns a copy (as PIL does).
io::Image resize_bicubic(const io::Image & src, int64_t width, int64_t height);

// the tiles in the reference order: grid tiles row-major, then (when there is more than one) the thumbnail.
// A 1-channel image is treated as gray RGB (PIL's convert('RGB')); the tiles are always 3-channel.
std::vector<io::Image> dynamic_preprocess(const io::Image & img, int64_t image_size, int64_t max_tiles,
                                          Grid * grid = nullptr);

// preprocessor_config.json (HF CLIPImageProcessor); the defaults are OpenAI CLIP ViT-L/14-336's
struct ImageProcessorConfig {
    int64_t size = 336;       // shortest edge after the resize
    int64_t crop_size = 336;  // square centre crop
    std::array<float, 3> mean{0.48145466f, 0.4578275f, 0.40821073f};
    std::array<float, 3> std{0.26862954f, 0.26130258f, 0.27577711f};
    double rescale_factor = 1.0 / 255;
    bool do_resize = true, do_center_crop = true, do_rescale = true, do_normalize = true;
};

// Reads preprocessor_config.json. Fields: size (int or {"shortest_edge": n}), crop_size (int or {"height": n,
// "width": n}, square only), image_mean / image_std (3 numbers, or one for all channels), rescale_factor, do_resize,
// do_center_crop, do_rescale, do_normalize, resample (must be 3 = bicubic if present). Missing fields keep the
// defaults; unknown fields are ignored; a wrong type or value is an Error naming the field and the file.
ImageProcessorConfig load_image_processor_config(const std::string & path);
// the same from JSON text; `what` names it in errors
ImageProcessorConfig parse_image_processor_config(const std::string & json_text, const std::string & what);

// CLIPImageProcessor.preprocess on each tile: resize the shortest edge to cfg.size (PIL bicubic; a no-op for square
// tiles of that size), centre crop cfg.crop_size (zero padding when smaller), then in float32 as transformers does
// it: x = float(u8 * rescale_factor) (the product in double), x = (x - mean) / std. -> float32 [n, 3, crop, crop]
// (With do_rescale off and do_normalize on, transformers 4.34 casts mean/std to uint8 and subtracts in uint8, wrapping
// around; here that case is computed in float32. Unused by CLIP configs.)
at::Tensor clip_pixel_values(const std::vector<io::Image> & tiles, const ImageProcessorConfig & cfg);

struct PreprocessedImage {
    at::Tensor pixel_values;  // [n_tiles, 3, S, S] float32; thumbnail last when n_tiles > 1
    Grid grid;
    int64_t width = 0, height = 0;  // original size
    io::Image global;               // the image resized to S x S (the thumbnail, or the only tile), uint8 RGB
};

// dynamic_preprocess with tile size S = cfg.crop_size, then clip_pixel_values
PreprocessedImage preprocess_anyres(const io::Image & img, const ImageProcessorConfig & cfg, int64_t max_tiles = 4);

}  // namespace visionllm::vision
