"""Goldens for the VisionLLMv2 region encoder and the visual-prompt rasterisation.

A PyTorch reference of the region encoder as the reference doc §3 describes it
(mask_embedding CNN on cat(image, mask); for each of 3 feature levels M += F_l, bilinear
grid_sample of M at every mask pixel (x/S, y/S), mean, up_dim; mean over the levels),
written for this test from that description, with the official state-dict names
(mask_embedding.{0,1,3,4,6}, up_dim). All mask pixels are used: every golden mask has
fewer than the official num_points (2304), where the official random subsample keeps them all.

Tiny dims: S = 56 (patch 14 -> a 4x4 map, P = 16), C (vis_hidden) = 32, out (llm_hidden) = 64;
the CNN keeps the official 64 / 256 channels. Random weights wider than the default init
(LayerNorm weights 1 +- 0.2, every bias 0.1 * randn) so that every parameter matters.

Visual prompts on a 90x24 original image, rasterised the reference way (§1.4 b):
  box:      xyxy / (W,H,W,H) * S in float32, then boxes_to_masks (clamp to [0, S-1],
            fill int(y1)..int(y2) x int(x1)..int(x2) inclusive);
  mask:     F.interpolate(mask.float()[None,None], (S,S), bilinear, align_corners=False).bool();
  point:    a one-pixel mask at (floor(x), floor(y)) at the original size, then the mask path;
  scribble: the polyline drawn 1 px wide (Bresenham, endpoints included), then the mask path.
90 -> 56 shrinks and 24 -> 56 grows. Where a source index scale * (dst + 0.5) - 0.5 is an exact
integer in exact arithmetic, torch's AVX2 / AVX-512 kernels (GCC fuses it into one FMA) and its
baseline build (ATEN_CPU_CAPABILITY=default, two roundings) can differ by a row; the fma_mask
case pins that down, so this golden must be made with a CPU capability of AVX2 or better.

Writes tests/data/golden/region/:
  weights.safetensors  region_encoder.* (bf16; mask_embedding.3.weight float8_e4m3fn to keep the
                       file small); the reference computes with exactly these values
  cases.safetensors
    image        [1, 3, S, S] bf16   the normalised global tile, shared by every region
    features_0..2 [1, P, C]  bf16    the three feature levels (shallowest first)
    masks        [6, 1, S, S] u8     regions: box, point, scribble, mask prompt, a random sparse mask
                                     with pixels on all four borders, and an empty mask
    image_size   [2] i64             the original image (W, H) the prompts refer to
    prompt_box [4] f64, prompt_point [2] f64, prompt_scribble [8] f64, prompt_mask [H, W] u8
    out_f32      [6, 64] f32         the reference in fp32
    out_bf16     [6, 64] bf16        the reference with the module, image and features in bf16
                                     (grid_sample in fp32, as the official code)

Run: .venv/bin/python tools/golden/region.py   (pins in tools/golden/requirements.txt)
"""
import copy
import os
import shutil

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "data", "golden", "region")

S, PATCH, C, OUT_DIM, HIDDEN = 56, 14, 32, 64, 256
W0, H0 = 90, 24  # the original image the prompts are given on
NUM_POINTS = 2304  # the official sampler keeps every pixel of masks at most this large


class LayerNorm2d(nn.Module):
    """Normalises [n, C, h, w] over C (biased variance, eps 1e-6), then per-channel affine."""

    def __init__(self, channels, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + self.eps)
        return self.weight[:, None, None] * y + self.bias[:, None, None]


class RegionEncoderRef(nn.Module):
    def __init__(self, embed_dim, out_dim, hidden_dim=HIDDEN, patch=PATCH):
        super().__init__()
        k = patch // 2
        self.mask_embedding = nn.Sequential(
            nn.Conv2d(4, hidden_dim // 4, kernel_size=k, stride=k),  # 0
            LayerNorm2d(hidden_dim // 4),  # 1
            nn.GELU(),  # 2
            nn.Conv2d(hidden_dim // 4, hidden_dim, kernel_size=2, stride=2),  # 3
            LayerNorm2d(hidden_dim),  # 4
            nn.GELU(),  # 5
            nn.Conv2d(hidden_dim, embed_dim, kernel_size=1),  # 6
        )
        self.up_dim = nn.Linear(embed_dim, out_dim)

    @torch.no_grad()
    def forward(self, images, masks, feats):
        dtype = images.dtype
        n, size = images.shape[0], masks.shape[-1]
        m = self.mask_embedding(torch.cat([images, masks.to(dtype)], dim=1))
        h, w = m.shape[-2:]
        per_level = []
        for f in feats:
            f = f.expand(n, -1, -1).reshape(n, h, w, -1).permute(0, 3, 1, 2)
            m = m + f  # accumulates over the levels
            pooled = []
            for i in range(n):
                yx = masks[i, 0].nonzero()  # [k, 2] (y, x), row-major
                if len(yx) == 0:  # the official 0/0 -> nan_to_num -> 0
                    pooled.append(torch.zeros(m.shape[1], dtype=dtype))
                    continue
                p = torch.stack([yx[:, 1] / size, yx[:, 0] / size], dim=-1)  # float32 (x/W, y/H)
                grid = (2.0 * p - 1.0)[None, :, None, :]
                s = F.grid_sample(m[i:i + 1].float(), grid, mode="bilinear", padding_mode="zeros",
                                  align_corners=False)  # [1, C, k, 1]
                s = s[0, :, :, 0].t().to(dtype)  # [k, C]
                pooled.append((s.sum(0) / len(yx)).nan_to_num())
            per_level.append(self.up_dim(torch.stack(pooled)))
        return torch.stack(per_level).mean(0)


# ---------------------------------------------------------------- rasterisation (the reference way)

def box_mask(box, w, h, size):
    b = torch.as_tensor(box, dtype=torch.float32)
    b = b / torch.as_tensor([w, h, w, h])
    b = b * torch.as_tensor([size, size, size, size])
    x1, y1, x2, y2 = [max(min(float(v), size - 1), 0) for v in b]
    m = torch.zeros(size, size)
    m[int(y1):int(y2) + 1, int(x1):int(x2) + 1] = 1
    return m


def resize_mask(mask, size):
    return F.interpolate(mask.float()[None, None], size=(size, size), mode="bilinear",
                         align_corners=False)[0, 0].bool().float()


def pixel(x, y, w, h):
    return min(int(x // 1), w - 1), min(int(y // 1), h - 1)


def bresenham(x0, y0, x1, y1):
    dx, sx = abs(x1 - x0), (1 if x0 < x1 else -1)
    dy, sy = -abs(y1 - y0), (1 if y0 < y1 else -1)
    err, out = dx + dy, []
    while True:
        out.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return out
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def point_mask(pt, w, h, size):
    m = torch.zeros(h, w)
    x, y = pixel(pt[0], pt[1], w, h)
    m[y, x] = 1
    return resize_mask(m, size)


def scribble_mask(coords, w, h, size):
    m = torch.zeros(h, w)
    v = [pixel(coords[i], coords[i + 1], w, h) for i in range(0, len(coords), 2)]
    for (xa, ya), (xb, yb) in zip(v[:-1], v[1:]):
        for x, y in bresenham(xa, ya, xb, yb):
            m[y, x] = 1
    return resize_mask(m, size)


# ---------------------------------------------------------------- weights

def randomize(model, g):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("weight"):  # LayerNorm2d
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)


def main():
    torch.set_num_threads(2)
    cap = torch.backends.cpu.get_cpu_capability()
    assert cap != "DEFAULT", "run on a CPU with AVX2 or better (see the docstring); got " + cap
    g = torch.Generator().manual_seed(20240613)

    model = RegionEncoderRef(C, OUT_DIM)
    randomize(model, g)
    stored = {}
    for name, p in model.state_dict().items():
        dt = torch.float8_e4m3fn if name == "mask_embedding.3.weight" else torch.bfloat16
        stored["region_encoder." + name] = p.to(dt).contiguous()
    # the reference computes with exactly the stored values
    model.load_state_dict({k[len("region_encoder."):]: v.float() for k, v in stored.items()})

    image = torch.randn(1, 3, S, S, generator=g).to(torch.bfloat16)
    P = (S // PATCH) ** 2
    feats = [(1.5 * torch.randn(1, P, C, generator=g)).to(torch.bfloat16) for _ in range(3)]

    prompt_box = [12.3, 3.7, 47.9, 15.2]
    prompt_point = [61.5, 9.2]
    prompt_scribble = [5.0, 20.0, 30.2, 2.5, 70.7, 18.1, 89.9, 23.9]
    yy, xx = torch.meshgrid(torch.arange(H0), torch.arange(W0), indexing="ij")
    prompt_mask = (((xx - 60.0) / 15.0) ** 2 + ((yy - 12.0) / 7.0) ** 2 <= 1.0).to(torch.uint8)
    for x, y in [(2, 1), (89, 23), (40, 22), (0, 0)]:  # isolated pixels, two on corners
        prompt_mask[y, x] = 1

    rand = (torch.rand(S, S, generator=g) < 0.05).float()
    rand[0, 5] = rand[S - 1, 30] = rand[17, 0] = rand[40, S - 1] = rand[0, 0] = rand[S - 1, S - 1] = 1
    masks = torch.stack([
        box_mask(prompt_box, W0, H0, S),
        point_mask(prompt_point, W0, H0, S),
        scribble_mask(prompt_scribble, W0, H0, S),
        resize_mask(prompt_mask, S),
        rand,
        torch.zeros(S, S),
    ])[:, None]
    fma_mask = torch.zeros(8, 8, dtype=torch.uint8)
    fma_mask[1, 2:6] = 1
    fma_mask_out = resize_mask(fma_mask, S)
    assert fma_mask_out[3].sum() > 0, "torch did not fuse the source-index math (see the docstring)"
    counts = masks.flatten(1).sum(1)
    assert (counts[:5] > 0).all() and counts[5] == 0 and (counts <= NUM_POINTS).all(), counts
    print("CPU capability", cap, "| mask pixels", counts.long().tolist())

    n = masks.shape[0]
    images = image.expand(n, -1, -1, -1)
    out_f32 = model(images.float(), masks, [f.float() for f in feats])
    model_bf16 = copy.deepcopy(model).to(torch.bfloat16)
    out_bf16 = model_bf16(images, masks, feats)
    # the empty mask gives up_dim(0) = the bias
    assert torch.equal(out_f32[5], model.up_dim.bias.detach())

    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    save_file(stored, os.path.join(OUT, "weights.safetensors"))
    cases = {
        "image": image.contiguous(),
        "masks": masks.to(torch.uint8).contiguous(),
        "image_size": torch.tensor([W0, H0], dtype=torch.int64),
        "prompt_box": torch.tensor(prompt_box, dtype=torch.float64),
        "prompt_point": torch.tensor(prompt_point, dtype=torch.float64),
        "prompt_scribble": torch.tensor(prompt_scribble, dtype=torch.float64),
        "prompt_mask": prompt_mask.contiguous(),
        "fma_mask": fma_mask,
        "fma_mask_out": fma_mask_out.to(torch.uint8).contiguous(),
        "out_f32": out_f32.contiguous(),
        "out_bf16": out_bf16.contiguous(),
    }
    for i, f in enumerate(feats):
        cases[f"features_{i}"] = f.contiguous()
    save_file(cases, os.path.join(OUT, "cases.safetensors"))
    with open(os.path.join(OUT, "README.md"), "w") as fh:
        fh.write(f"Generated by tools/golden/region.py (torch {torch.__version__}, CPU capability {cap}); "
                 "see its docstring.\n")
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
