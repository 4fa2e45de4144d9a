#!/usr/bin/env python3
"""Goldens for the expected-weight layouts (tests/engine/layout_test.cpp).

Instantiates the reference modules on the meta device (no memory) from
transformers 4.34.0, the version VisionLLMv2 pins, and records every state-dict
key with its shape, next to the config it came from. The C++ layouts must
produce exactly these keys and shapes.

Requires: pip install transformers==4.34.0 (see requirements.txt).
Usage: python tools/golden/layouts.py [--out tests/data/golden/layouts.json]
"""
import argparse
import json
import os

import torch
import transformers
from transformers import CLIPVisionConfig, CLIPVisionModel, LlamaConfig, LlamaForCausalLM


def dump(model):
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def llama(**kw):
    cfg = LlamaConfig(**kw)
    with torch.device("meta"):
        m = LlamaForCausalLM(cfg)
    return {"config": cfg.to_dict(), "tensors": dump(m)}


def clip(**kw):
    cfg = CLIPVisionConfig(**kw)
    with torch.device("meta"):
        m = CLIPVisionModel(cfg)
    return {"config": cfg.to_dict(), "tensors": dump(m)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "golden",
                                                  "layouts.json"))
    out = os.path.abspath(ap.parse_args().out)
    cases = {
        # make-tiny's tiny LLM, a GQA variant, and Vicuna-7B with the 26 VisionLLMv2 tokens
        "llama_tiny": llama(vocab_size=876, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                            num_attention_heads=4, max_position_embeddings=512, rms_norm_eps=1e-5),
        "llama_gqa": llama(vocab_size=300, hidden_size=96, intermediate_size=200, num_hidden_layers=3,
                           num_attention_heads=6, num_key_value_heads=2),
        "llama_tied_bias": llama(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                 num_attention_heads=2, tie_word_embeddings=True, attention_bias=True),
        "vicuna_7b": llama(vocab_size=32026, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                           num_attention_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5),
        # make-tiny's tiny CLIP tower and CLIP ViT-L/14-336
        "clip_tiny": clip(hidden_size=32, intermediate_size=64, projection_dim=32, num_hidden_layers=3,
                          num_attention_heads=4, image_size=56, patch_size=14),
        "clip_l_336": clip(hidden_size=1024, intermediate_size=4096, projection_dim=768, num_hidden_layers=24,
                           num_attention_heads=16, image_size=336, patch_size=14),
    }
    with open(out, "w") as f:
        json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "cases": cases}, f,
                  indent=0, sort_keys=True)
    print("wrote", out, os.path.getsize(out), "bytes")


if __name__ == "__main__":
    main()
