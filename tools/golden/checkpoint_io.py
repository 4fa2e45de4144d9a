#!/usr/bin/env python3
"""Goldens for the checkpoint readers (tests/io/golden_checkpoint_test.cpp).

Writes, with the reference writers (torch.save and safetensors), small
checkpoints covering every dtype we read, non-contiguous and offset views,
shared storages, Parameters, module state dicts with _metadata, sharded
indexes, and a legacy (non-zip) torch.save file that must be refused. The
manifest records each tensor's dtype, shape and contiguous little-endian bytes
as hex, which the C++ test compares bit for bit.

Reference versions: see requirements.txt beside this file.
Usage: python tools/golden/checkpoint_io.py [--out tests/data/golden/io]
"""
import argparse
import json
import os
from collections import OrderedDict

import torch
from safetensors.torch import save_file

DTYPE_NAMES = {
    torch.float64: "f64", torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8", torch.uint8: "u8",
    torch.bool: "bool",
}


def tensors():
    g = torch.Generator().manual_seed(1234)
    t = OrderedDict()
    base = torch.randn(5, 7, generator=g)
    for dt in (torch.float64, torch.float32, torch.float16, torch.bfloat16):
        t[f"dense.{DTYPE_NAMES[dt]}"] = (base * 3).to(dt)
    t["dense.f32_special"] = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), 1e-40, 3.4e38, -1.5])
    t["dense.i64"] = torch.randint(-2**62, 2**62, (4, 3), generator=g, dtype=torch.int64)
    t["dense.i32"] = torch.randint(-2**31, 2**31 - 1, (6,), generator=g, dtype=torch.int32)
    t["dense.i16"] = torch.randint(-2**15, 2**15 - 1, (2, 3, 2), generator=g, dtype=torch.int16)
    t["dense.i8"] = torch.randint(-128, 127, (9,), generator=g, dtype=torch.int8)
    t["dense.u8"] = torch.randint(0, 255, (3, 5), generator=g, dtype=torch.uint8)
    t["dense.bool"] = torch.randint(0, 2, (4, 4), generator=g).bool()
    t["dense.scalar"] = torch.tensor(2.5, dtype=torch.float32)
    t["dense.empty"] = torch.zeros(0, 3, dtype=torch.bfloat16)
    t["dense.rank4"] = torch.randn(2, 3, 4, 5, generator=g).to(torch.bfloat16)
    return t


def views():
    """Tensors whose storage layout only torch.save preserves."""
    g = torch.Generator().manual_seed(99)
    big = torch.randn(6, 8, generator=g).to(torch.bfloat16)
    v = OrderedDict()
    v["view.transposed"] = big.t()                 # non-contiguous strides
    v["view.rows_2_5"] = big[2:5]                  # storage offset
    v["view.strided_cols"] = big[:, 1::3]          # offset + non-unit stride
    v["view.shared_a"] = big[0]                    # two tensors, one storage
    v["view.shared_b"] = big[5, 2:6]
    v["view.expanded_row"] = torch.arange(4, dtype=torch.int64)  # plain, after views
    v["param.weight"] = torch.nn.Parameter(torch.randn(3, 2, generator=g), requires_grad=False)
    return v


def manifest_entry(x):
    x = x.detach().contiguous()
    raw = x.view(torch.uint8).numpy().tobytes() if x.numel() and x.dim() else bytes(x.untyped_storage())[: x.numel() * x.element_size()]
    return {"dtype": DTYPE_NAMES[x.dtype], "shape": list(x.shape), "hex": raw.hex()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "tests", "data", "golden", "io"))
    out = os.path.abspath(ap.parse_args().out)
    os.makedirs(out, exist_ok=True)

    dense = tensors()
    vw = views()
    manifest = OrderedDict()
    for k, x in list(dense.items()) + list(vw.items()):
        manifest[k] = manifest_entry(x)

    # single-file torch.save of everything (new zip format), and the same keys as safetensors
    torch.save(OrderedDict(list(dense.items()) + list(vw.items())), os.path.join(out, "all.bin"))
    save_file({k: x.contiguous() for k, x in dense.items()}, os.path.join(out, "dense.safetensors"),
              metadata={"format": "pt", "source": "tools/golden/checkpoint_io.py"})

    # a module's state_dict: OrderedDict with _metadata, saved inside a wrapper dict
    torch.manual_seed(7)
    m = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3)).to(torch.bfloat16)
    sd = m.state_dict()
    torch.save(sd, os.path.join(out, "module_state.bin"))
    for k, x in sd.items():
        manifest["module." + k] = manifest_entry(x)

    # sharded, as transformers writes them
    names = list(dense.keys())
    half = len(names) // 2
    for fmt in ("bin", "safetensors"):
        d = os.path.join(out, "sharded_" + fmt)
        os.makedirs(d, exist_ok=True)
        wmap = {}
        for i, part in enumerate((names[:half], names[half:])):
            if fmt == "bin":
                fn = f"pytorch_model-{i + 1:05d}-of-00002.bin"
                torch.save({k: dense[k] for k in part}, os.path.join(d, fn))
            else:
                fn = f"model-{i + 1:05d}-of-00002.safetensors"
                save_file({k: dense[k].contiguous() for k in part}, os.path.join(d, fn), metadata={"format": "pt"})
            wmap.update({k: fn for k in part})
        idx = "pytorch_model.bin.index.json" if fmt == "bin" else "model.safetensors.index.json"
        total = sum(dense[k].numel() * dense[k].element_size() for k in names)
        with open(os.path.join(d, idx), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": wmap}, f, indent=2, sort_keys=True)

    # legacy (pre-1.6) format: must be refused with a clear message
    torch.save({"x": torch.ones(2)}, os.path.join(out, "legacy.bin"), _use_new_zipfile_serialization=False)

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump({"torch": torch.__version__, "tensors": manifest}, f, indent=1)
    print("wrote", out)


if __name__ == "__main__":
    main()
