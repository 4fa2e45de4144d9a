#!/usr/bin/env python3
"""Goldens for image preprocessing (tests/vision/preprocess_test.cpp).

The reference is VisionLLM v2's CLIP input pipeline (docs: ../shared/reference/visionllmv2.md section 2),
written here from that description:

  PIL.Image.open(path).convert('RGB')
  -> dynamic_preprocess(image, image_size=336, max_num=4)   (mm_utils.py: "anyres" tiling + thumbnail)
  -> transformers CLIPImageProcessor (OpenAI CLIP-336 defaults) on every tile

Three parts, all written to tests/data/golden/preprocess/:

 (a) resize.safetensors: PIL Image.resize(size, BICUBIC) on small synthetic RGB and L images, full
     inputs ("<case>.in", uint8 [h, w, c]) and outputs ("<case>.out.<W>x<H>", uint8 [H, W, c]); the C++
     resize must match every byte.
     Also "clip<k>.<case>": CLIPImageProcessor alone on three of those inputs under several configs (non-square
     resize + centre crop, 224, zero padding, no normalise, other rescale/mean/std, no resize), float32
     [1, 3, H, W] sampled like (c); one of them gives transformers' ragged crop (shape recorded, C++ refuses).
 (b) preprocess.json "grids": the grid dynamic_preprocess picks for a table of (w, h, image_size,
     max_tiles), near-ties and extreme aspect ratios included, and "candidates": the candidate order
     (Python set iteration then a stable sort on i*j) for max_tiles 1..24.
 (c) pipeline.safetensors + preprocess.json "images": the full pipeline on every image of
     ../shared/data/images, ../shared/data/coco_keypoints/*.jpg, ../shared/data/crowdpose/*.jpg and on
     the small synthetic PNG/BMP/JPEG/WebP files committed in inputs/ (regenerated identically by this script).
     Per image: "<name>.pixel_values" float32 [n_tiles, 3, 21, 21] = the normalised tiles sampled at
     rows/columns 7, 23, ..., 327 (every 16th pixel, offset 7), "<name>.global" uint8 [21, 21, 3] =
     the global 336x336 image (the thumbnail, or the only tile) at the same positions.

Versions used for the committed files (also in preprocess.json "versions"): Python 3.11.7,
pillow 10.4.0, transformers 4.34.0, numpy 2.4.6. Pillow matters: up to 12.x it always resizes with the
horizontal pass first (the 8-bit code is identical in 10.4.0, 11.3.0 and 12.0.0); Pillow 13.0 runs the
vertical pass first when the height shrinks more than twice as much as the width, which changes pixels
by up to ~11 levels. The C++ port (and VisionLLM v2's 2024 environment) follow the horizontal-first
behaviour, so regenerate with pillow<13 (the script refuses 13+).
The Python-set order of the candidate grids depends on CPython's tuple hash, identical for CPython
3.8 and later.

Requires: pip install pillow==10.4.0 transformers==4.34.0 safetensors numpy (see requirements.txt).
Usage: python tools/golden/preprocess.py [--out tests/data/golden/preprocess] [--shared ../shared]
"""
import argparse
import json
import os
import platform
import sys

import numpy as np
import PIL
import transformers
from PIL import Image
from safetensors.numpy import save_file
from transformers import CLIPImageProcessor

IMAGE_SIZE = 336
MAX_TILES = 4
SUB_OFFSET, SUB_STEP = 7, 16  # the pixel sub-grid stored for the pipeline goldens (21 x 21 per tile)


# --- dynamic_preprocess, from the reference description --------------------------------------------
def candidate_grids(max_tiles, min_tiles=1):
    # every (i, j) with min <= i*j <= max, gathered in a Python set (so its iteration order is the set's),
    # then stably sorted by the tile count i*j
    grids = set()
    for n in range(min_tiles, max_tiles + 1):
        for i in range(1, n + 1):
            for j in range(1, n + 1):
                if min_tiles <= i * j <= max_tiles:
                    grids.add((i, j))
    # the same set built as one generator expression must iterate identically
    assert list(grids) == list(set((i, j) for n in range(min_tiles, max_tiles + 1) for i in range(1, n + 1)
                                   for j in range(1, n + 1) if min_tiles <= i * j <= max_tiles))
    return sorted(grids, key=lambda g: g[0] * g[1])


def choose_grid(width, height, image_size, max_tiles):
    aspect = width / height
    best, best_diff = (1, 1), float("inf")
    for i, j in candidate_grids(max_tiles):
        diff = abs(aspect - i / j)
        if diff < best_diff:
            best, best_diff = (i, j), diff
        elif diff == best_diff and width * height > 0.5 * image_size * image_size * i * j:
            best = (i, j)
    return best


def dynamic_preprocess(img, image_size, max_tiles):
    cols, rows = choose_grid(img.size[0], img.size[1], image_size, max_tiles)
    resized = img.resize((image_size * cols, image_size * rows))  # default resample: BICUBIC for RGB
    tiles = []
    for k in range(cols * rows):
        x, y = (k % cols) * image_size, (k // cols) * image_size
        tiles.append(resized.crop((x, y, x + image_size, y + image_size)))
    if len(tiles) != 1:
        tiles.append(img.resize((image_size, image_size)))
    return tiles, (cols, rows)


# --- (a) resize ------------------------------------------------------------------------------------
def resize_cases(rng):
    def rand(h, w, c):
        return rng.integers(0, 256, size=(h, w, c), dtype=np.uint8)

    yy, xx = np.mgrid[0:48, 0:64]
    grad = np.stack([xx * 4, yy * 5, (xx + yy) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    edges = np.zeros((40, 40, 1), np.uint8)
    edges[10:30, 10:30] = 255  # hard edges: bicubic overshoot must clip at 0 and 255
    edges[18:22, :] = 0
    return [
        ("rgb37x53", rand(53, 37, 3), [(37, 53), (20, 30), (74, 106), (50, 17), (1, 53), (37, 1), (1, 1), (113, 7),
                                       (36, 52), (38, 54)]),
        ("l37x53", rand(53, 37, 1), [(20, 30), (74, 106), (1, 1), (113, 7), (19, 60)]),
        ("grad64x48", grad, [(31, 97), (7, 5), (64, 24), (32, 48)]),
        ("l500x40", rand(40, 500, 1), [(7, 3), (7, 40), (500, 7), (23, 11), (336, 9)]),
        ("rgb300x11", rand(11, 300, 3), [(7, 2), (41, 11), (300, 5)]),
        ("rgb30x400", rand(400, 30, 3), [(25, 40), (30, 37), (3, 7), (8, 113)]),
        ("rgb1x9", rand(9, 1, 3), [(5, 4), (1, 3), (3, 1), (1, 20)]),
        ("rgb9x1", rand(1, 9, 3), [(4, 2), (20, 1), (9, 3)]),
        ("l3x2", rand(2, 3, 1), [(5, 7), (1, 1), (97, 64)]),
        ("edges40", edges, [(13, 13), (57, 57), (40, 9)]),
    ]


def pil_image(a):
    return Image.fromarray(a[:, :, 0], "L") if a.shape[2] == 1 else Image.fromarray(a, "RGB")


def run_resize(rng):
    tensors, cases = {}, []
    for name, arr, sizes in resize_cases(rng):
        im = pil_image(arr)
        tensors[name + ".in"] = np.ascontiguousarray(arr)
        for w, h in sizes:
            out = np.asarray(im.resize((w, h), Image.BICUBIC))
            out = out.reshape(h, w, arr.shape[2])
            tensors[f"{name}.out.{w}x{h}"] = np.ascontiguousarray(out)
        cases.append({"name": name, "mode": "L" if arr.shape[2] == 1 else "RGB", "width": arr.shape[1],
                      "height": arr.shape[0], "sizes": [list(s) for s in sizes]})
    return tensors, cases


def run_clip_cases(resize_inputs):
    """CLIPImageProcessor alone on non-square inputs and other configs (resize + centre crop, padding included)."""
    configs = [
        {},  # the OpenAI 336 defaults of clip_processor()
        {"size": {"shortest_edge": 224}, "crop_size": {"height": 224, "width": 224}},
        {"size": 300, "crop_size": 320},  # crop larger than the image: zero padding
        {"do_normalize": False},
        # (not do_rescale=False with do_normalize: transformers 4.34 then casts mean/std to uint8 and subtracts in
        # uint8, wrapping around; the C++ port computes that case in float32 instead)
        {"rescale_factor": 1 / 127.5, "image_mean": [1.0, 0.9, 1.1], "image_std": [1.0, 0.5, 2.0]},
        {"do_resize": False, "crop_size": 30},
    ]
    tensors, cases = {}, []
    for ci, cfg in enumerate(configs):
        for name in ("rgb37x53", "grad64x48", "rgb300x11"):
            arr = resize_inputs[name]
            proc = clip_processor()
            for k, v in cfg.items():
                setattr(proc, k, v)
            pv = proc.preprocess([Image.fromarray(arr, "RGB")], return_tensors="np")["pixel_values"]
            key = f"clip{ci}.{name}"
            tensors[key] = np.ascontiguousarray(pv[:, :, SUB_OFFSET::SUB_STEP, SUB_OFFSET::SUB_STEP])
            cases.append({"key": key, "input": name, "config": cfg, "shape": list(pv.shape)})
    return tensors, cases


# --- (b) grids -------------------------------------------------------------------------------------
def grid_table(rng):
    sizes = [(1, 1), (1, 1000), (1000, 1), (1, 2), (2, 1), (336, 336), (475, 475), (476, 476), (672, 336),
             (336, 672), (10000, 3), (3, 10000), (4000, 100), (100, 4000)]
    # exact ties between two neighbouring aspect ratios (1.5: 1 vs 2; 0.75: 1 vs 1/2; 2.5; 3.5; 5/12; 7/24; 4/3
    # for 4/3 vs 3/2 ...), at areas on both sides of the 0.5*S^2*i*j threshold
    for base in [(3, 2), (2, 3), (3, 4), (4, 3), (5, 2), (2, 5), (7, 2), (2, 7), (5, 12), (12, 5), (7, 24), (24, 7),
                 (17, 12), (12, 17), (7, 5), (5, 7), (9, 2), (2, 9)]:
        for k in (1, 7, 50, 100, 150, 200, 260, 400, 1000):
            sizes.append((base[0] * k, base[1] * k))
    for _ in range(60):
        w, h = int(rng.integers(1, 3000)), int(rng.integers(1, 3000))
        sizes.append((w, h))
    out = []
    for w, h in sizes:
        for image_size in (336, 448):
            for max_tiles in (1, 4, 6, 12):
                c, r = choose_grid(w, h, image_size, max_tiles)
                out.append([w, h, image_size, max_tiles, c, r])
    return out


# --- (c) pipeline ------------------------------------------------------------------------------------
def write_png16(path, rgb16):
    """A minimal 16-bit RGB PNG: IHDR (depth 16, colour type 2), one IDAT of unfiltered rows, IEND."""
    import struct
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    h, w, _ = rgb16.shape
    raw = b"".join(b"\x00" + rgb16[y].astype(">u2").tobytes() for y in range(h))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)) +
                chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def synthetic_inputs(rng, folder):
    """Small synthetic images in formats and shapes the shared images lack; deterministic."""
    os.makedirs(folder, exist_ok=True)

    def pattern(w, h, seed):
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
        r = 127.5 + 120 * np.sin(xx / (3.0 + seed) + yy / 7.0)
        g = 255.0 * xx / max(w - 1, 1)
        b = 255.0 * ((xx // 8 + yy // 8) % 2)  # a checkerboard: sharp edges for the bicubic kernel
        return np.stack([r, g, b], axis=-1).clip(0, 255).astype(np.uint8)

    made = []

    def save(name, img, **kw):
        path = os.path.join(folder, name)
        img.save(path, **kw)
        made.append(name)

    save("wide_1400x90.png", Image.fromarray(pattern(1400, 90, 0)), optimize=True)       # 4x1
    save("tall_20x180.bmp", Image.fromarray(pattern(20, 180, 1)))                        # 1x4
    save("tiny_5x3.png", Image.fromarray(rng.integers(0, 256, (3, 5, 3), dtype=np.uint8)))  # 2x1, 134x upscale
    gray = pattern(300, 170, 2)[:, :, 0]
    save("gray_300x170.png", Image.fromarray(gray, "L"), optimize=True)                  # L -> RGB, 2x1
    rgba = np.concatenate([pattern(160, 300, 3), np.tile(np.arange(160, dtype=np.uint8)[None, :, None], (300, 1, 1))],
                          axis=-1)
    save("rgba_160x300.png", Image.fromarray(rgba, "RGBA"), optimize=True)              # alpha dropped, 1x2
    pal = Image.fromarray(pattern(150, 420, 4)).quantize(colors=32, method=Image.Quantize.MEDIANCUT, dither=0)
    save("palette_150x420.png", pal, optimize=True)                                     # P -> RGB, 1x3
    save("square_480.png", Image.fromarray(pattern(480, 480, 5)), optimize=True)        # tie rule: 2x2
    save("bmp_90x30.bmp", Image.fromarray(pattern(90, 30, 6)))                           # 3x1
    save("small_300x200.jpg", Image.fromarray(pattern(300, 200, 7)), quality=90)         # 1x1, no thumbnail
    save("lossless_200x120.webp", Image.fromarray(pattern(200, 120, 8)), lossless=True)  # 2x1
    save("lossy_120x260.webp", Image.fromarray(pattern(120, 260, 9)), quality=80)        # 1x2
    # 16-bit RGB PNG (PIL cannot write one): PIL opens it as RGB keeping the high byte of each sample
    hi = pattern(48, 120, 10).astype(np.uint16)
    write_png16(os.path.join(folder, "rgb16_48x120.png"), hi * 256 + (hi * 7 % 256))      # 1x3
    made.append("rgb16_48x120.png")
    return made


def clip_processor():
    # OpenAI CLIP ViT-L/14-336's preprocessor_config.json (the checkpoint's own is assumed identical)
    return CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
                              do_resize=True, do_center_crop=True, do_rescale=True, rescale_factor=1 / 255,
                              do_normalize=True, image_mean=[0.48145466, 0.4578275, 0.40821073],
                              image_std=[0.26862954, 0.26130258, 0.27577711], do_convert_rgb=True)


def run_pipeline(images):
    proc = clip_processor()
    tensors, entries = {}, []
    sub = slice(SUB_OFFSET, IMAGE_SIZE, SUB_STEP)
    for name, source, rel, path in images:
        img = Image.open(path).convert("RGB")
        tiles, (cols, rows) = dynamic_preprocess(img, IMAGE_SIZE, MAX_TILES)
        pv = proc.preprocess(tiles, return_tensors="np")["pixel_values"]
        assert pv.dtype == np.float32 and pv.shape == (len(tiles), 3, IMAGE_SIZE, IMAGE_SIZE), pv.shape
        tensors[name + ".pixel_values"] = np.ascontiguousarray(pv[:, :, sub, sub])
        tensors[name + ".global"] = np.ascontiguousarray(np.asarray(tiles[-1])[sub, sub, :])
        lossy = rel.lower().endswith((".jpg", ".jpeg")) or "lossy" in os.path.basename(rel)  # decoders may differ
        entries.append({"name": name, "source": source, "path": rel, "lossy": lossy, "width": img.size[0],
                        "height": img.size[1], "cols": cols, "rows": rows, "n_tiles": len(tiles)})
        print(f"  {rel}: {img.size[0]}x{img.size[1]} -> grid {cols}x{rows}, {len(tiles)} tiles")
    return tensors, entries


def main():
    root = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(root, "tests", "data", "golden", "preprocess"))
    ap.add_argument("--shared", default=os.path.join(root, "..", "shared"))
    args = ap.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    if int(PIL.__version__.split(".")[0]) >= 13:
        sys.exit(f"pillow {PIL.__version__}: use pillow<13 (13.0 changed the resize pass order; see the docstring)")
    rng = np.random.default_rng(20240607)

    resize_tensors, resize_cases_ = run_resize(rng)
    clip_tensors, clip_cases = run_clip_cases({c["name"]: resize_tensors[c["name"] + ".in"] for c in resize_cases_
                                               if c["mode"] == "RGB"})
    resize_tensors.update(clip_tensors)
    save_file(resize_tensors, os.path.join(out, "resize.safetensors"))

    grids = grid_table(rng)
    candidates = {str(m): [list(g) for g in candidate_grids(m)] for m in range(1, 25)}

    made = synthetic_inputs(rng, os.path.join(out, "inputs"))
    images = []
    data = os.path.join(os.path.abspath(args.shared), "data")
    for sub in ("images", "coco_keypoints", "crowdpose"):
        folder = os.path.join(data, sub)
        for f in sorted(os.listdir(folder)):
            if f.lower().endswith((".png", ".jpg", ".jpeg", ".bmp", ".webp")):
                images.append((f"{sub}/{os.path.splitext(f)[0]}", "shared", f"data/{sub}/{f}", os.path.join(folder, f)))
    for f in made:
        images.append((f"inputs/{os.path.splitext(f)[0]}", "golden", f"inputs/{f}", os.path.join(out, "inputs", f)))
    pipe_tensors, entries = run_pipeline(images)
    save_file(pipe_tensors, os.path.join(out, "pipeline.safetensors"))

    manifest = {
        "versions": {"python": platform.python_version(), "pillow": PIL.__version__,
                     "transformers": transformers.__version__, "numpy": np.__version__},
        "image_size": IMAGE_SIZE, "max_tiles": MAX_TILES, "subsample": {"offset": SUB_OFFSET, "step": SUB_STEP},
        "resize": resize_cases_, "clip": clip_cases, "candidates": candidates,
        "grids_columns": ["width", "height", "image_size", "max_tiles", "cols", "rows"], "grids": grids,
        "images": entries,
    }
    with open(os.path.join(out, "preprocess.json"), "w") as f:
        json.dump(manifest, f, indent=None, separators=(",", ":"))
        f.write("\n")
    for f in sorted(os.listdir(out)):
        p = os.path.join(out, f)
        if os.path.isfile(p):
            print("wrote", p, os.path.getsize(p), "bytes")


if __name__ == "__main__":
    main()
