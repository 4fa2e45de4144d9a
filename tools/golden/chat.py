"""End-to-end goldens for `visionllm chat`: greedy token ids from a Python reference of VisionLLM v2's
chat path, assembled from transformers 4.34 modules and the documented splicing
(shared/reference/visionllmv2.md §1.3, §1.4 a/b, §2, §3, §4.2), on the tiny random checkpoint that
`visionllm make-tiny --dtype f32 --seed 0` writes (the C++ test writes the same one).

The reference, written here from that description:
  * image: PIL open + convert('RGB'); dynamic_preprocess (anyres: grid by aspect ratio with the
    area tie rule, PIL BICUBIC resize, row-major crops, thumbnail appended when more than one tile);
    CLIPImageProcessor (transformers 4.34) on each tile;
  * CLIPVisionModel(output_hidden_states=True): hidden_states[vis_output_layer][:, 1:] -> vl_bridge
    (Linear, GELU, Linear) -> the <im_patch> rows in order;
  * regions: boxes scaled to the S x S global image and filled inclusively (boxes_to_masks); the
    region encoder of §3 on the global tile (the last one) and hidden_states[-3:], all mask pixels
    (every mask here is below the reference's sampling threshold) -> the <region> rows in order;
  * prompt: conv vicuna_v1, "<image>\\n" before the first question, tokenizer_image_token with the
    -200 sentinel replaced by tokenizer("<im_patch>" * N).input_ids[1:];
  * LlamaForCausalLM on inputs_embeds, greedy, KV cache, stop on EOS (id 2) or after MAX_NEW tokens;
  * the super link (§5.1): a generated routing token ([DET] [SEG] [GRD] [POSE]: the 4 rows of
    emb_embeddings_det / _pose; [GEN] [EDIT]: the 64 rows of _gen / _edit) is fed together with its
    learned queries in one step, and the next token comes from the last query (the random tiny
    model does emit [DET] now and then).

Writes tests/data/golden/chat/: the small input images and expected.json (per case: the prompt
text, the full prompt ids, the grid, the generated ids, the answer text).

Run: .venv/bin/python tools/golden/chat.py [path/to/visionllm]   (pins in tools/golden/requirements.txt)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from PIL import Image
from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM
from transformers import LlamaTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "data", "golden", "chat")
MAX_NEW = 24
SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")


# ---------------------------------------------------------------- images

def make_images():
    """Small deterministic test images: a square-ish one (1 tile) and a wide one (several tiles)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:45, 0:52]
    a = np.stack([(x * 5) % 256, (y * 5) % 256, ((x + y) * 3) % 256], -1).astype(np.float64)
    a += rng.normal(0, 20, a.shape)
    Image.fromarray(np.clip(a, 0, 255).astype(np.uint8)).save(os.path.join(OUT, "square.png"))
    y, x = np.mgrid[0:40, 0:150]
    b = np.stack([np.sin(x / 7) * 120 + 128, np.cos(y / 5) * 120 + 128, (x * y) % 256], -1)
    b += rng.normal(0, 15, b.shape)
    Image.fromarray(np.clip(b, 0, 255).astype(np.uint8)).save(os.path.join(OUT, "wide.png"))


def dynamic_preprocess(img, image_size, max_num):
    w, h = img.size
    aspect = w / h
    # candidates as the reference builds them: a set of (i, j), sorted by i * j (stable over set order)
    ratios = set((i, j) for n in range(1, max_num + 1) for i in range(1, n + 1) for j in range(1, n + 1)
                 if 1 <= i * j <= max_num)
    ratios = sorted(ratios, key=lambda r: r[0] * r[1])
    best_diff, best = float("inf"), (1, 1)
    area = w * h
    for r in ratios:
        diff = abs(aspect - r[0] / r[1])
        if diff < best_diff:
            best_diff, best = diff, r
        elif diff == best_diff and area > 0.5 * image_size * image_size * r[0] * r[1]:
            best = r
    tw, th = image_size * best[0], image_size * best[1]
    resized = img.resize((tw, th))
    tiles = []
    for k in range(best[0] * best[1]):
        cols = tw // image_size
        box = ((k % cols) * image_size, (k // cols) * image_size, (k % cols + 1) * image_size,
               (k // cols + 1) * image_size)
        tiles.append(resized.crop(box))
    if len(tiles) != 1:
        tiles.append(img.resize((image_size, image_size)))
    return tiles, best


# ---------------------------------------------------------------- model

class LayerNorm2d(nn.Module):
    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight, self.bias, self.eps = nn.Parameter(torch.ones(c)), nn.Parameter(torch.zeros(c)), eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * ((x - u) / torch.sqrt(s + self.eps)) + self.bias[:, None, None]


class RegionEncoder(nn.Module):
    """§3 with mask_pool_type='grid_sample', every mask pixel used."""

    def __init__(self, embed_dim, out_dim):
        super().__init__()
        self.mask_embedding = nn.Sequential(nn.Conv2d(4, 64, 7, 7), LayerNorm2d(64), nn.GELU(), nn.Conv2d(64, 256, 2, 2),
                                            LayerNorm2d(256), nn.GELU(), nn.Conv2d(256, embed_dim, 1))
        self.up_dim = nn.Linear(embed_dim, out_dim)

    def forward(self, images, masks, levels):
        m = self.mask_embedding(torch.cat([images, masks.to(images.dtype)], 1))
        n, _, h, w = m.shape
        H, W = masks.shape[-2:]
        outs = []
        for f in levels:
            m = m + f.reshape(n, h, w, -1).permute(0, 3, 1, 2)
            feats = []
            for i in range(n):
                yx = masks[i, 0].nonzero().float()
                if len(yx) == 0:
                    feats.append(torch.zeros(m.shape[1]))
                    continue
                p = torch.stack([yx[:, 1] / W, yx[:, 0] / H], -1)  # (x/W, y/H)
                s = F.grid_sample(m[i:i + 1].float(), (2 * p - 1)[None, :, None], align_corners=False)
                feats.append(s[0, :, :, 0].mean(1))
            outs.append(self.up_dim(torch.stack(feats)))
        return torch.stack(outs).mean(0)


def boxes_to_masks(boxes, S):
    masks = torch.zeros(len(boxes), S, S)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        x1, y1, x2, y2 = (max(min(v, S - 1), 0) for v in (x1, y1, x2, y2))
        masks[i, int(y1):int(y2) + 1, int(x1):int(x2) + 1] = 1
    return masks


def load_state(ckpt):
    index = json.load(open(os.path.join(ckpt, "pytorch_model.bin.index.json")))["weight_map"]
    state = {}
    for f in sorted(set(index.values())):
        state.update(torch.load(os.path.join(ckpt, f), map_location="cpu", weights_only=True))
    return state


def sub(state, prefix):
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class Reference:
    def __init__(self, ckpt):
        cfg = json.load(open(os.path.join(ckpt, "config.json")))
        self.cfg = cfg
        state = load_state(ckpt)
        self.llm = LlamaForCausalLM(LlamaConfig(**cfg["llm_config"])).eval()
        self.llm.load_state_dict(sub(state, "llm."))
        vc = CLIPVisionConfig(**cfg["vis_encoder_config"])
        self.vis = CLIPVisionModel(vc).eval()
        self.vis.load_state_dict(sub(state, "vis_encoder."), strict=False)  # position_ids: non-persistent
        C, L = vc.hidden_size, cfg["llm_config"]["hidden_size"]
        self.bridge = nn.Sequential(nn.Linear(C, L), nn.GELU(), nn.Linear(L, L))
        self.bridge.load_state_dict(sub(state, "vl_bridge."))
        self.region = RegionEncoder(C, L)
        self.region.load_state_dict(sub(state, "region_encoder."))
        self.S = vc.image_size
        self.P = (vc.image_size // vc.patch_size) ** 2
        self.tok = LlamaTokenizer.from_pretrained(ckpt)
        tables = {"[DET]": "det", "[SEG]": "det", "[GRD]": "det", "[POSE]": "pose", "[GEN]": "gen", "[EDIT]": "edit"}
        self.queries = {self.tok.convert_tokens_to_ids(t): state[f"emb_embeddings_{n}.weight"] for t, n in tables.items()}
        self.proc = CLIPImageProcessor.from_pretrained(ckpt)

    def prompt_ids(self, prompt, n_tiles):
        chunks = [self.tok(c).input_ids if len(c) > 0 else [self.tok.bos_token_id] for c in prompt.split("<image>")]
        ids, offset = [], 0
        if chunks and chunks[0] and chunks[0][0] == self.tok.bos_token_id:
            offset = 1
            ids.append(chunks[0][0])
        for k, c in enumerate(chunks):
            if k > 0:
                ids.extend([-200])
            ids.extend(c[offset:])
        if -200 in ids:
            run = self.tok(["<im_patch>" * (self.P * n_tiles)]).input_ids[0][1:]
            i = ids.index(-200)
            ids = ids[:i] + run + ids[i + 1:]
        return ids

    @torch.no_grad()
    def chat(self, image_path, turns, boxes=()):
        tiles, grid = dynamic_preprocess(Image.open(image_path).convert("RGB"), self.S, 4)
        px = torch.stack([self.proc.preprocess(t, return_tensors="pt")["pixel_values"][0] for t in tiles])
        hs = self.vis(px, output_hidden_states=True).hidden_states
        rows = self.bridge(hs[self.cfg["vis_output_layer"]][:, 1:]).reshape(-1, self.llm.config.hidden_size)
        region_rows = None
        if boxes:
            W, H = Image.open(image_path).size
            scaled = [[b[0] / W * self.S, b[1] / H * self.S, b[2] / W * self.S, b[3] / H * self.S] for b in boxes]
            masks = boxes_to_masks(scaled, self.S)[:, None]
            n = len(boxes)
            region_rows = self.region(px[-1:].expand(n, -1, -1, -1), masks,
                                      [h[-1:, 1:].expand(n, -1, -1) for h in hs[-3:]])
        history, results = [], []
        for q in turns:
            msgs = history + [q]
            # conv.get_prompt(): system + sep, then "ROLE: msg" + sep (user) / sep2 (assistant), open turn "ASSISTANT:"
            prompt = SYSTEM + " "
            for i, m in enumerate(msgs):
                role = "USER" if i % 2 == 0 else "ASSISTANT"
                text = ("<image>\n" + m) if i == 0 else m
                prompt += f"{role}: {text}" + (" " if i % 2 == 0 else "</s>")
            prompt += "ASSISTANT:"
            ids = self.prompt_ids(prompt, len(tiles))
            emb = self.llm.get_input_embeddings()(torch.tensor([ids]))[0].clone()
            sel = torch.tensor(ids) == self.tok.convert_tokens_to_ids("<im_patch>")
            emb[sel] = emb[sel] * 0.0 + rows
            reg = torch.tensor(ids) == self.tok.convert_tokens_to_ids("<region>")
            assert int(reg.sum()) == (0 if region_rows is None else len(region_rows))
            if region_rows is not None:
                emb[reg] = region_rows
            out = self.llm(inputs_embeds=emb[None], use_cache=True)
            past, gen = out.past_key_values, []
            logits = out.logits[0, -1]
            for _ in range(MAX_NEW):
                nxt = int(logits.argmax())
                gen.append(nxt)
                if nxt == self.tok.eos_token_id:
                    break
                step = self.llm.get_input_embeddings()(torch.tensor([[nxt]]))
                if nxt in self.queries:  # routing token: its queries join it in this step
                    step = torch.cat([step, self.queries[nxt][None]], 1)
                out = self.llm(inputs_embeds=step, past_key_values=past, use_cache=True)
                past, logits = out.past_key_values, out.logits[0, -1]
            answer_ids = [t for t in gen if t != self.tok.eos_token_id]
            answer = self.tok.decode(answer_ids, skip_special_tokens=True).strip()
            results.append(dict(prompt=prompt, prompt_ids=ids, generated=gen, answer=answer))
            history = msgs + [answer]
        return dict(grid=list(grid), tiles=len(tiles), turns=results)


def main():
    vl = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bin", "visionllm")
    os.makedirs(OUT, exist_ok=True)
    make_images()
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([vl, "make-tiny", "-o", d, "--dtype", "f32", "--seed", "0", "--quiet"], check=True)
        ref = Reference(d)
        sq, wide = os.path.join(OUT, "square.png"), os.path.join(OUT, "wide.png")
        cases = {
            "image_question": dict(image="square.png", turns=["What is in the image?"]),
            "multi_tile": dict(image="wide.png", turns=["Describe the picture in detail."]),
            "region_box": dict(image="wide.png", boxes=[[10.0, 5.0, 60.5, 33.0]],
                               turns=["What is the category of <reg>region1<region></reg>? "
                                      "Using only one word or phrase."]),
            "two_turns": dict(image="square.png", turns=["What color is it?", "And what shape?"]),
        }
        expected = {}
        for name, c in cases.items():
            r = ref.chat(os.path.join(OUT, c["image"]), c["turns"], tuple(c.get("boxes", ())))
            expected[name] = dict(image=c["image"], boxes=c.get("boxes", []), **r)
            print(name, r["grid"], [t["generated"] for t in r["turns"]])
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(dict(max_new_tokens=MAX_NEW, make_tiny=["--dtype", "f32", "--seed", "0"], cases=expected), f)
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Generated by tools/golden/chat.py (transformers 4.34.0, torch 2.11.0, Pillow); see its docstring.\n")


if __name__ == "__main__":
    main()
