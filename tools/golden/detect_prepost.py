#!/usr/bin/env python3
"""Goldens for the Grounding DINO detection pre- and post-processing (tests/decoders/detect_preprocess_test.cpp,
tests/decoders/detect_postprocess_test.cpp).

The reference is VisionLLM v2's detection evaluation (../shared/reference/visionllmv2.md §6.1 and §8,
decoders_det_pose.md §4.2), written here from its code paths:

 Preprocessing: the mmdet 2.x test pipeline of datasets/coco_llava.py, i.e. mmcv's
   LoadImageFromFile  cv2.imdecode(bytes, IMREAD_COLOR) -> BGR uint8
   Resize(img_scale=(1333, 800), keep_ratio=True)
                      mmcv.imrescale: rescale_size (scale = min(long/max(h, w), short/min(h, w)),
                      size int(w * scale + 0.5), int(h * scale + 0.5)), then mmcv.imresize =
                      cv2.resize(img, size, interpolation=cv2.INTER_LINEAR)
   Normalize(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375], to_rgb=True)
                      mmcv.imnormalize: float32 copy, cvtColor BGR2RGB, cv2.subtract(img, float64(mean)),
                      cv2.multiply(img, 1 / float64(std)); mean/std stored as float32 (mmdet)
   Pad(size_divisor=1), ImageToTensor
 then util/misc.py nested_tensor_from_tensor_list(size_divisibility=32) (zero padding) and the model's
 pixel_mask = pixel_values[:, 0] != 0.
 Post-processing: eval/eval_det.py post_process_det_gdino (threshold on s > threshold) and
 post_process_instseg_gdino (masks x4 bilinear, crop to img_shape, bilinear to the original size, sigmoid > 0.5),
 then mmdet's encode_mask_results = pycocotools.mask.encode on Fortran-ordered uint8 masks, and mask.area.

Files written to tests/data/golden/detect/:
  prepost.json            versions; "pattern" (the synthetic input formula); "resize" cases (src w, h, channels ->
                          dst w, h: crc32 of cv2.resize's output bytes); "pre" cases (synthetic pattern images of
                          awkward sizes, the committed PNGs in inputs/ and the images of ../shared/data/images):
                          decoded-image crc32 (RGB bytes), resized size, crc32 of the resized RGB bytes, padded size,
                          crc32 of pixel_values' float32 bytes ([3, Hp, Wp], C order), its sum, the mask's true count;
                          "post" cases (arguments and per-detection expected values), "rle" cases.
  pre.safetensors         per "pre" case: <name>.rows uint8 [2, w, 3] (first and last row of the resized RGB image),
                          <name>.sample float32 [3, ceil(Hp/32), ceil(Wp/32)] (pixel_values[:, 5::32, 5::32]).
  post.safetensors        per "post" case: <name>.logits / .boxes (float32; [Q, L], [Q, 4]), .mask_logits (float16,
                          [Q, h, w], used as float32), expected .scores float32, .labels / .queries int64, .xyxy
                          float32 [k, 4]; per "rle" case <name>.mask uint8 [h, w].
  inputs/*.png            two small synthetic images (a 97x61 RGB one and a 40x90 gray one) so the file path is
                          tested without ../shared.

The synthetic pattern (reproduced in the C++ test): value(x, y, c) = ((x * 73856093) ^ (y * 19349663) ^
(c * 83492791)) >> 11 & 255 in uint32 arithmetic, c the RGB channel (a gray image uses c = 0); noise, the worst case
for resize rounding.

Versions used for the committed files (also in prepost.json "versions"): Python 3.11.7, opencv-python-headless
4.10.0.84 (cv2 4.10.0: for 8-bit INTER_LINEAR resize uses the classic fixed-point path, not IPP, not
INTER_LINEAR_EXACT), torch 2.11.0 (CPU), numpy 2.4.6, pycocotools 2.0.8, safetensors 0.8.0. mmcv/mmdet are not
installed: the few lines of theirs that matter are written out below (mmcv 1.x image/geometric.py rescale_size /
_scale_size / imresize and image/photometric.py imnormalize_, mmdet 2.x Normalize storing mean/std as float32).

Usage: .venv/bin/python tools/golden/detect_prepost.py [--out tests/data/golden/detect] [--shared ../shared]
"""
import argparse
import json
import os
import platform
import zlib

import cv2
import numpy as np
import pycocotools
import pycocotools.mask as mask_util
import safetensors
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)
SAMPLE_OFF, SAMPLE_STEP = 5, 32


def crc(a):
    return zlib.crc32(np.ascontiguousarray(a).tobytes()) & 0xFFFFFFFF


def pattern(w, h, c):
    x = np.arange(w, dtype=np.uint32)[None, :]
    y = np.arange(h, dtype=np.uint32)[:, None]
    v = (x * np.uint32(73856093)) ^ (y * np.uint32(19349663)) ^ np.uint32((c * 83492791) & 0xFFFFFFFF)
    return ((v >> np.uint32(11)) & np.uint32(255)).astype(np.uint8)


def pattern_bgr(w, h, channels):
    if channels == 1:
        g = pattern(w, h, 0)
        return np.stack([g, g, g], -1)  # mmcv's 'color' load of a gray image: B = G = R
    return np.stack([pattern(w, h, 2), pattern(w, h, 1), pattern(w, h, 0)], -1)  # BGR of RGB channels 0, 1, 2


# --- mmcv 1.x, as written there ----------------------------------------------------------------------------------
def _scale_size(size, scale):
    w, h = size
    return int(w * float(scale) + 0.5), int(h * float(scale) + 0.5)


def rescale_size(old_size, scale):
    w, h = old_size
    max_long_edge = max(scale)
    max_short_edge = min(scale)
    scale_factor = min(max_long_edge / max(h, w), max_short_edge / min(h, w))
    return _scale_size((w, h), scale_factor)


def imnormalize(img, mean, std, to_rgb=True):
    img = img.copy().astype(np.float32)
    mean = np.float64(mean.reshape(1, -1))
    stdinv = 1 / np.float64(std.reshape(1, -1))
    if to_rgb:
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, img)
    cv2.subtract(img, mean, img)
    cv2.multiply(img, stdinv, img)
    return img


# --- util/misc.py nested_tensor_from_tensor_list(size_divisibility=32), one image --------------------------------
def nested_tensor(img_chw, stride=32):
    c, h, w = img_chw.shape
    hp = (h + (stride - 1)) // stride * stride
    wp = (w + (stride - 1)) // stride * stride
    tensor = torch.zeros((1, c, hp, wp), dtype=img_chw.dtype)
    tensor[0, :c, :h, :w].copy_(img_chw)
    return tensor


def pipeline(img_bgr):
    h, w = img_bgr.shape[:2]
    new_w, new_h = rescale_size((w, h), (1333, 800))
    resized = cv2.resize(img_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    norm = imnormalize(resized, MEAN, STD, to_rgb=True)
    pixel_values = nested_tensor(torch.from_numpy(norm.transpose(2, 0, 1).copy()))
    pixel_mask = pixel_values[:, 0] != 0
    return resized, pixel_values, pixel_mask


def pre_case(name, img_bgr, source, tensors, extra=None):
    resized, pv, pm = pipeline(img_bgr)
    rgb = resized[:, :, ::-1]
    case = dict(name=name, source=source, width=img_bgr.shape[1], height=img_bgr.shape[0],
                input_crc=crc(img_bgr[:, :, ::-1]), resized_width=resized.shape[1], resized_height=resized.shape[0],
                resized_crc=crc(rgb), padded_width=pv.shape[3], padded_height=pv.shape[2],
                pixel_values_crc=crc(pv[0].numpy()), pixel_values_sum=float(pv.double().sum()),
                mask_count=int(pm.sum()))
    if extra:
        case.update(extra)
    tensors[name + ".rows"] = np.ascontiguousarray(np.stack([rgb[0], rgb[-1]]))
    tensors[name + ".sample"] = np.ascontiguousarray(pv[0, :, SAMPLE_OFF::SAMPLE_STEP, SAMPLE_OFF::SAMPLE_STEP].numpy())
    # the mask is the unpadded region exactly
    assert case["mask_count"] == resized.shape[0] * resized.shape[1]
    return case


# --- eval/eval_det.py ----------------------------------------------------------------------------------------------
def box_cxcywh_to_xyxy(x):
    x_c, y_c, w, h = x.unbind(-1)
    return torch.stack([(x_c - 0.5 * w), (y_c - 0.5 * h), (x_c + 0.5 * w), (y_c + 0.5 * h)], dim=-1)


def post_process_det(logits, boxes, num_classes, topk, width, height, threshold):
    out_logits = logits[None, :, :num_classes]
    prob = out_logits.sigmoid().view(1, -1)
    k_value = min(topk, prob.size(1))
    scores, idx = torch.topk(prob, k_value, dim=1)
    topk_boxes = torch.div(idx, out_logits.shape[2], rounding_mode="floor")
    labels = idx % out_logits.shape[2]
    b = torch.gather(box_cxcywh_to_xyxy(boxes[None]), 1, topk_boxes.unsqueeze(-1).repeat(1, 1, 4))
    img_h, img_w = torch.Tensor([height]), torch.Tensor([width])
    b = b * torch.stack([img_w, img_h, img_w, img_h], dim=1)[:, None, :]
    s, l, b, q = scores[0], labels[0], b[0], topk_boxes[0]
    keep = s > threshold
    return s[keep], l[keep], b[keep], q[keep]


def post_process_instseg(logits, boxes, masks, num_classes, topk, width, height, resized_w, resized_h, stride=4):
    logits_per_image = logits[:, :num_classes]
    prob = logits_per_image.sigmoid().view(-1)
    k_value = min(topk, prob.size(0))
    scores, idx = torch.topk(prob, k_value, dim=0)
    topk_boxes = torch.div(idx, logits_per_image.shape[1], rounding_mode="floor")
    labels = idx % logits_per_image.shape[-1]
    b = box_cxcywh_to_xyxy(boxes[topk_boxes])
    b = b * torch.as_tensor([width, height, width, height], dtype=torch.float32)[None, :]
    m = masks[topk_boxes]
    H, W = m.shape[-2:]
    m = F.interpolate(m[:, None], size=(H * stride, W * stride), mode="bilinear", align_corners=False)
    m = m[:, :, :resized_h, :resized_w]
    m = F.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)[:, 0]
    m = m.sigmoid() > 0.5
    return scores, labels, b, topk_boxes, m


def rle_of(mask_bool):
    r = mask_util.encode(np.array(mask_bool[:, :, None], order="F", dtype="uint8"))[0]
    return r["counts"].decode(), int(mask_util.area(r))


def smooth_logits(g, q, h, w, amp):
    base = torch.randn(q, 1, (h + 3) // 4, (w + 3) // 4, generator=g) * amp
    up = F.interpolate(base, size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return (up + 0.3 * torch.randn(q, h, w, generator=g)).half()


def make_post(tensors):
    cases = []
    g = torch.Generator().manual_seed(5)

    def det(name, Q, L, T, num_classes, topk, width, height, threshold, quant=0.5, very_negative=0):
        logits = torch.round(torch.randn(Q, L, generator=g) * 3 / quant) * quant  # ties on purpose
        if very_negative:
            logits[:very_negative] = -200.0  # sigmoid underflows to 0: dropped by s > 0
        logits[:, T:] = float("-inf")
        boxes = torch.rand(Q, 4, generator=g)
        boxes[:, 2:] *= 0.6
        s, l, b, q = post_process_det(logits, boxes, num_classes, topk, width, height, threshold)
        tensors.update({name + ".logits": logits.numpy(), name + ".boxes": boxes.numpy(), name + ".scores": s.numpy(),
                        name + ".labels": l.numpy(), name + ".queries": q.numpy(), name + ".xyxy": b.numpy()})
        cases.append(dict(name=name, kind="det", num_classes=num_classes, topk=topk, width=width, height=height,
                          threshold=threshold, count=int(s.numel())))

    det("det", 40, 12, 7, 7, 100, 640, 427, 0.0, very_negative=30)
    det("det_clamped", 6, 8, 3, 3, 100, 333, 500, 0.0)
    det("det_threshold", 50, 16, 9, 9, 100, 1200, 901, 0.95, quant=0.25)
    det("det_all_classes", 20, 5, 5, 5, 7, 1, 1, 0.0)  # num_classes == L

    def inst(name, Q, L, T, num_classes, topk, width, height, resized_w, resized_h):
        logits = torch.round(torch.randn(Q, L, generator=g) * 3 * 4) / 4
        logits[:, T:] = float("-inf")
        boxes = torch.rand(Q, 4, generator=g)
        hp, wp = (resized_h + 31) // 32 * 32, (resized_w + 31) // 32 * 32
        masks16 = smooth_logits(g, Q, hp // 4, wp // 4, 4.0)
        s, l, b, q, m = post_process_instseg(logits, boxes, masks16.float(), num_classes, topk, width, height,
                                             resized_w, resized_h)
        rles = [rle_of(mk.numpy()) for mk in m]
        tensors.update({name + ".logits": logits.numpy(), name + ".boxes": boxes.numpy(),
                        name + ".mask_logits": masks16.numpy(), name + ".scores": s.numpy(),
                        name + ".labels": l.numpy(), name + ".queries": q.numpy(), name + ".xyxy": b.numpy()})
        cases.append(dict(name=name, kind="instseg", num_classes=num_classes, topk=topk, width=width, height=height,
                          resized_width=resized_w, resized_height=resized_h, count=int(s.numel()),
                          rle=[r[0] for r in rles], area=[r[1] for r in rles]))

    # a small original upscaled (135x100 -> 1067x790 in the pipeline; here a small resized size), and a downscale
    inst("inst_up", 30, 10, 4, 4, 25, 135, 100, 50, 37)
    inst("inst_down", 12, 6, 3, 3, 10, 41, 30, 50, 37)
    # the released geometry: 2000x1500 -> 1067x800 (padded 1088x800, masks 272x200)
    inst("inst_coco", 3, 4, 2, 2, 6, 2000, 1500, 1067, 800)
    return cases


def make_rle(tensors):
    cases = []
    rng = np.random.default_rng(11)
    masks = {
        "zeros": np.zeros((4, 5), np.uint8),
        "ones": np.ones((4, 5), np.uint8),
        "corner": np.pad(np.ones((1, 1), np.uint8), ((0, 3), (4, 0))),  # one pixel at the top right
        "checker": (np.indices((7, 9)).sum(0) % 2).astype(np.uint8),
        "one_row": np.array([[0, 1, 1, 0, 1, 1, 1, 0, 0, 1]], np.uint8),
        "random": (rng.random((37, 23)) < 0.4).astype(np.uint8),
    }
    yy, xx = np.mgrid[:300, :200]
    masks["blobs"] = (((yy - 120) ** 2 + (xx - 80) ** 2 < 70 ** 2) | ((yy - 250) ** 2 + (xx - 160) ** 2 < 30 ** 2)
                      ).astype(np.uint8)  # long runs: multi-character counts, negative differences
    for name, m in masks.items():
        s, a = rle_of(m)
        tensors["rle." + name + ".mask"] = np.ascontiguousarray(m)
        cases.append(dict(name=name, height=int(m.shape[0]), width=int(m.shape[1]), rle=s, area=a))
    return cases


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "data", "golden", "detect"))
    ap.add_argument("--shared", default=os.path.join(ROOT, "..", "shared"))
    args = ap.parse_args()
    os.makedirs(os.path.join(args.out, "inputs"), exist_ok=True)
    torch.set_num_threads(1)

    # resize alone: random sizes both ways, the copy, the exact 2x reduction (INTER_AREA fast path), 3x, 1xN
    rng = np.random.default_rng(3)
    resize = []
    fixed = [(1, 1, 800, 800), (1, 1, 3, 2), (2, 2, 1, 1), (4, 6, 2, 3), (10, 10, 5, 5), (9, 9, 3, 3), (9, 9, 4, 4),
             (50, 40, 50, 40), (50, 40, 25, 20), (50, 40, 25, 21), (1, 300, 1, 7), (300, 1, 7, 1), (7, 1, 300, 1),
             (17, 13, 1333, 800), (1333, 800, 17, 13), (640, 480, 1067, 800)]
    for sw, sh, dw, dh in fixed:
        for ch in (3, 1):
            resize.append((sw, sh, ch, dw, dh))
    for _ in range(40):
        sw, sh = int(rng.integers(1, 260)), int(rng.integers(1, 260))
        dw, dh = int(rng.integers(1, 420)), int(rng.integers(1, 420))
        resize.append((sw, sh, 3, dw, dh))
    resize_cases = []
    for sw, sh, ch, dw, dh in resize:
        src = pattern_bgr(sw, sh, 3)[:, :, ::-1] if ch == 3 else pattern(sw, sh, 0)
        src = np.ascontiguousarray(src)  # RGB (or gray), as io::Image holds it
        out = cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR)
        resize_cases.append(dict(src=[sw, sh], channels=ch, dst=[dw, dh], crc=crc(out)))

    # the whole pipeline on synthetic images of awkward sizes (w, h, channels)
    pre_tensors = {}
    pre = []
    for w, h, ch in [(1, 1, 3), (3, 1000, 3), (1000, 3, 3), (799, 1334, 3), (1334, 799, 3), (1333, 800, 3),
                     (2666, 1600, 3), (2400, 1600, 3), (640, 480, 3), (500, 375, 3), (4000, 3000, 3), (3999, 2, 3),
                     (7, 5, 3), (300, 200, 1), (2667, 1601, 3), (10000, 10000, 3)]:
        name = f"pattern_{w}x{h}" + ("_gray" if ch == 1 else "")
        pre.append(pre_case(name, pattern_bgr(w, h, ch), "pattern", pre_tensors, dict(channels=ch)))
        print(name, pre[-1]["resized_width"], pre[-1]["resized_height"])

    # committed small PNGs (decoded by cv2 here, by io::read_image in the test)
    g = np.random.default_rng(7)
    yy, xx = np.mgrid[:61, :97]
    rgb = np.stack([(xx * 255 // 96), (yy * 255 // 60), (xx + yy) % 256], -1).astype(np.int32)
    rgb = np.clip(rgb + g.integers(-20, 21, rgb.shape), 0, 255).astype(np.uint8)
    cv2.imwrite(os.path.join(args.out, "inputs", "rgb_97x61.png"), rgb[:, :, ::-1])
    gray = g.integers(0, 256, (90, 40), dtype=np.uint8)
    cv2.imwrite(os.path.join(args.out, "inputs", "gray_40x90.png"), gray)
    for f in ["rgb_97x61.png", "gray_40x90.png"]:
        img = cv2.imread(os.path.join(args.out, "inputs", f), cv2.IMREAD_COLOR)
        pre.append(pre_case("file_" + os.path.splitext(f)[0], img, "inputs/" + f, pre_tensors))

    # real images from ../shared (referenced, not copied)
    img_dir = os.path.join(args.shared, "data", "images")
    if os.path.isdir(img_dir):
        for f in sorted(os.listdir(img_dir)):
            img = cv2.imread(os.path.join(img_dir, f), cv2.IMREAD_COLOR)
            if img is None:
                continue
            lossy = f.lower().endswith((".jpg", ".jpeg"))
            pre.append(pre_case("shared_" + os.path.splitext(f)[0], img, "images/" + f, pre_tensors,
                                dict(lossy=lossy)))
            print(f, img.shape)
    else:
        print("no", img_dir, ": shared image cases left out")

    post_tensors = {}
    post = make_post(post_tensors)
    rle = make_rle(post_tensors)

    save_file(pre_tensors, os.path.join(args.out, "pre.safetensors"))
    save_file(post_tensors, os.path.join(args.out, "post.safetensors"))
    manifest = dict(
        versions=dict(python=platform.python_version(), cv2=cv2.__version__, torch=torch.__version__,
                      numpy=np.__version__, pycocotools=getattr(pycocotools, "__version__", "2.0.8"),
                      safetensors=safetensors.__version__),
        pattern="((x * 73856093) ^ (y * 19349663) ^ (c * 83492791)) >> 11 & 255, uint32",
        sample=dict(offset=SAMPLE_OFF, step=SAMPLE_STEP),
        resize=resize_cases, pre=pre, post=post, rle=rle)
    with open(os.path.join(args.out, "prepost.json"), "w") as fh:
        json.dump(manifest, fh, indent=1)
        fh.write("\n")
    for f in ["pre.safetensors", "post.safetensors", "prepost.json"]:
        print(f, os.path.getsize(os.path.join(args.out, f)))


if __name__ == "__main__":
    main()
