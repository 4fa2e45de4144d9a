#!/usr/bin/env python3
"""Goldens for the sampler's logit filters (tests/llm/sampler_test.cpp).

Runs transformers' RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
TopKLogitsWarper and TopPLogitsWarper (in generate()'s order) on fixed logits
and records the processed scores (-inf where a token is filtered out).

Requires: pip install transformers==4.34.0 (see requirements.txt).
Usage: python tools/golden/sampling.py [--out tests/data/golden/sampling.json]
"""
import argparse
import json
import os

import torch
import transformers
from transformers import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
                          TopPLogitsWarper)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "golden",
                                                  "sampling.json"))
    out = os.path.abspath(ap.parse_args().out)
    g = torch.Generator().manual_seed(5)
    logits = (torch.randn(1, 50, generator=g) * 3).float()
    logits[0, 7] = logits[0, 8]  # a tie, to pin down how top-k treats equal scores
    history = [3, 7, 7, 11, 42]
    cases = []
    for rep in (1.0, 1.3):
        for temp in (1.0, 0.7):
            for top_k in (0, 1, 5, 20):
                for top_p in (1.0, 0.9, 0.5):
                    s = logits.clone()
                    ids = torch.tensor([history])
                    if rep != 1.0:
                        s = RepetitionPenaltyLogitsProcessor(rep)(ids, s)
                    if temp != 1.0:
                        s = TemperatureLogitsWarper(temp)(ids, s)
                    if top_k > 0:
                        s = TopKLogitsWarper(top_k)(ids, s)
                    if top_p < 1.0:
                        s = TopPLogitsWarper(top_p)(ids, s)
                    cases.append({"repetition_penalty": rep, "temperature": temp, "top_k": top_k, "top_p": top_p,
                                  "scores": [None if v == float("-inf") else v for v in s[0].tolist()]})
    with open(out, "w") as f:
        json.dump({"transformers": transformers.__version__, "logits": logits[0].tolist(), "history": history,
                   "cases": cases}, f)
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
