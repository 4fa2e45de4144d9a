"""PyTorch baseline for `visionllm-bench gdino`: transformers' GroundingDinoForObjectDetection (4.40.2, eager, its
PyTorch multi-scale deformable attention as on any CPU) with VisionLLM v2's Grounding DINO shapes and random weights
(transformers' own init), fp32, the same thread count, best of N runs on the same input geometry.

The shapes are the released gdino_config's (configs/visionllmv2-7b.config.json: Swin-T, d_model 256, 900 queries,
6 + 6 layers, 8 heads, FFN 2048, 4 levels, 4 points), with transformers' 3 Swin out_features (stage2..4). Like
VisionLLM v2, no BERT runs: the text backbone is replaced by a stub returning random 768-d features for T tokens (T
routing groups in VisionLLM v2), then transformers' text_projection; so both sides do the same work but for what each
model has on its own (ours: patch2query on T x num_embs LLM states and, with --masks, the mask branch; transformers:
text_projection). The image: a 800x1333 input padded to a multiple of 32 (800x1344), pixel_mask false on the padding.

Run (from the project root):
    PYTHONPATH=.venv/tf440 .venv/bin/python tools/bench/gdino_transformers.py [--size 800x1333] [--text 80] [-r 2] [-t 2]
Prints one JSON line: {"transformers_s": best seconds, "runs": [...], "threads": N, ...}. With --serve (what
`visionllm-bench gdino --baseline` starts): a "ready" JSON line after the warm-up, then one {"s": seconds} line per
"run" line read from stdin, so that the C++ bench interleaves its runs with these.
"""
import argparse
import json
import os
import sys
import time

import torch
from torch import nn

import transformers
from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection
from transformers.modeling_outputs import BaseModelOutput

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
FIELDS = ["num_queries", "encoder_layers", "encoder_ffn_dim", "encoder_attention_heads", "decoder_layers",
          "decoder_ffn_dim", "decoder_attention_heads", "activation_function", "d_model", "position_embedding_type",
          "num_feature_levels", "encoder_n_points", "decoder_n_points", "two_stage", "max_text_len",
          "embedding_init_target", "query_dim", "decoder_bbox_embed_share", "two_stage_bbox_embed_share",
          "positional_embedding_temperature", "layer_norm_eps"]


class TextStub(nn.Module):
    """Stands in for BERT: fixed random features of the text length asked for."""

    def __init__(self, hidden):
        super().__init__()
        self.hidden = hidden

    def forward(self, input_ids, *args, **kwargs):
        g = torch.Generator().manual_seed(0)
        feats = torch.randn(input_ids.shape[0], input_ids.shape[1], self.hidden, generator=g)
        return BaseModelOutput(last_hidden_state=feats)


def build(config_path):
    with open(config_path) as f:
        g = json.load(f)
    g = g.get("gdino_config", g)
    kw = {k: g[k] for k in FIELDS if k in g}
    bb = {k: v for k, v in g["backbone_config"].items() if k not in ("out_indices", "stage_names", "_name_or_path")}
    bb["out_features"] = ["stage2", "stage3", "stage4"]  # transformers' GroundingDino reads 3 backbone levels
    kw["backbone_config"] = bb
    kw["disable_custom_kernels"] = True  # no CUDA kernel on the CPU: the PyTorch path (what it falls back to anyway)
    cfg = GroundingDinoConfig(**kw)
    model = GroundingDinoForObjectDetection(cfg).eval()
    model.model.text_backbone = TextStub(cfg.text_config.hidden_size)
    return model, cfg


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=os.path.join(ROOT, "configs", "visionllmv2-7b.config.json"),
                    help="a VisionLLMv2 config.json (its gdino_config) or a gdino_config JSON")
    ap.add_argument("--size", default="800x1333", help="HxW of the image before padding to a multiple of 32")
    ap.add_argument("--text", type=int, default=80, help="text tokens (routing groups)")
    ap.add_argument("-r", "--reps", type=int, default=2)
    ap.add_argument("-t", "--threads", type=int, default=0)
    ap.add_argument("--serve", action="store_true", help="after the warm-up, one run per 'run' line on stdin")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    h, w = (int(x) for x in a.size.lower().split("x"))
    ph, pw = (h + 31) // 32 * 32, (w + 31) // 32 * 32
    t0 = time.perf_counter()
    model, cfg = build(a.config)
    build_s = time.perf_counter() - t0
    px = torch.zeros(1, 3, ph, pw)
    px[:, :, :h, :w] = torch.randn(1, 3, h, w)
    pmask = torch.zeros(1, ph, pw, dtype=torch.long)
    pmask[:, :h, :w] = 1
    ids = torch.randint(1000, 2000, (1, a.text))  # no special tokens: one text block
    ids[0, 0], ids[0, -1] = 101, 102
    att = torch.ones_like(ids)
    info = {"bench": "gdino_transformers", "threads": torch.get_num_threads(), "size": [h, w], "padded": [ph, pw],
            "text": a.text, "queries": cfg.num_queries, "build_s": build_s, "torch": torch.__version__,
            "transformers": transformers.__version__}

    def run():
        t = time.perf_counter()
        out = model(pixel_values=px, input_ids=ids, attention_mask=att, pixel_mask=pmask)
        return time.perf_counter() - t, out

    with torch.no_grad():
        _, out = run()  # warm-up
        info["finite"] = bool(torch.isfinite(out.pred_boxes).all())
        if a.serve:
            # for visionllm-bench gdino --baseline: "run" -> {"s": seconds}, "quit" or EOF ends
            print(json.dumps(dict(info, ready=True)), flush=True)
            for line in sys.stdin:
                if line.strip() == "quit":
                    break
                if line.strip() == "run":
                    print(json.dumps({"s": run()[0]}), flush=True)
            return
        runs = [run()[0] for _ in range(a.reps)]
    print(json.dumps(dict(info, transformers_s=min(runs), runs=runs)))


if __name__ == "__main__":
    main()
