"""Baseline for `visionllm-bench cocoeval`: pycocotools' COCO / loadRes / COCOeval on the same files, timed the same
way (load = reading the ground truth and the results; eval = evaluate + accumulate + summarize).

Run (from the project root; pycocotools 2.0.8 from PyPI, see tools/golden/requirements.txt):
    .venv/bin/python tools/bench/cocoeval_pycocotools.py --ann GT.json --results DT.json [--iou-type bbox]
Prints one JSON line on stdout: {"load_s", "eval_s", "total_s", "stats", "pycocotools"}; pycocotools' own prints
go to stderr.
"""
import argparse
import contextlib
import json
import sys
import time

from importlib.metadata import version

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ann", required=True)
    ap.add_argument("--results", required=True)
    ap.add_argument("--iou-type", default="bbox")
    args = ap.parse_args()
    with contextlib.redirect_stdout(sys.stderr):
        t0 = time.perf_counter()
        gt = COCO(args.ann)
        dt = gt.loadRes(args.results)
        t1 = time.perf_counter()
        e = COCOeval(gt, dt, args.iou_type)
        e.evaluate()
        e.accumulate()
        e.summarize()
        t2 = time.perf_counter()
    print(json.dumps({"load_s": t1 - t0, "eval_s": t2 - t1, "total_s": t2 - t0, "stats": e.stats.tolist(),
                      "pycocotools": version("pycocotools")}))


if __name__ == "__main__":
    main()
