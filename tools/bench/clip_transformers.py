"""PyTorch eager baseline for `visionllm-bench vision`, from Python: transformers' CLIPVisionModel
(eager attention) with the same checkpoint, fp32, the same thread count, best of N runs per tile count.

Run: .venv/bin/python tools/bench/clip_transformers.py DIR [--tiles 1,5] [-r 2] [-t 2]
DIR: a CLIPVisionModel directory (visionllm make-tiny -o DIR --arch clip --preset 7b).
"""
import argparse
import json
import time

import torch
from transformers import CLIPVisionConfig, CLIPVisionModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--tiles", default="1,5")
    ap.add_argument("-r", "--reps", type=int, default=2)
    ap.add_argument("-t", "--threads", type=int, default=0)
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    cfg = CLIPVisionConfig.from_pretrained(a.dir)
    index = json.load(open(a.dir + "/pytorch_model.bin.index.json"))["weight_map"]
    state = {}
    for f in sorted(set(index.values())):
        state.update(torch.load(a.dir + "/" + f, map_location="cpu", weights_only=True))
    model = CLIPVisionModel(cfg).eval()
    model.load_state_dict(state, strict=False)
    model = model.float()
    S = cfg.image_size
    with torch.no_grad():
        for n in [int(x) for x in a.tiles.split(",")]:
            px = torch.randn(n, 3, S, S)
            model(px)
            best = 1e30
            for _ in range(a.reps):
                t = time.perf_counter()
                model(px)
                best = min(best, time.perf_counter() - t)
            print(json.dumps({"tiles": n, "transformers_eager_s": best, "threads": torch.get_num_threads(),
                              "torch": torch.__version__}))


if __name__ == "__main__":
    main()
