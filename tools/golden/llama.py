"""Goldens for the LLaMA decoder: transformers 4.34 LlamaForCausalLM on tiny random configs.

Writes tests/data/golden/llama/<case>/ with the model as save_pretrained writes it (config.json +
weights) and expected.safetensors holding:
  input_ids        [1, T]    the prompt
  logits_f32       [T, V]    fp32 logits at every prompt position
  greedy_f32       [32]      32 greedy tokens after the prompt (EOS not special: the loop runs on)
  step_logits_f32  [32, V]   the logits each greedy step saw (through the KV cache)
  logits_bf16      [T, V]    the same model cast to bf16 (logits .float())
  greedy_bf16      [32]
  batch_ids        [2, T2]   two prompts run as one batch, and their last-position logits
  batch_logits_f32 [2, V]

Weights are drawn wider than the model's init (std 0.02 would make every continuation the same
token), so the greedy paths and logits are informative.

Run: .venv/bin/python tools/golden/llama.py   (pins in tools/golden/requirements.txt)
"""
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "data", "golden", "llama")
STEPS = 32

CASES = {
    # multi-head attention, untied lm_head, saved as pytorch_model.bin
    "mha": dict(config=dict(vocab_size=320, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=128,
                            rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False),
                safe=False, prompt_len=12, seed=1),
    # grouped-query attention (6 query heads over 2 kv heads), tied embeddings, another theta, safetensors
    "gqa": dict(config=dict(vocab_size=300, hidden_size=96, intermediate_size=200, num_hidden_layers=3,
                            num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
                            rms_norm_eps=1e-6, rope_theta=500000.0, tie_word_embeddings=True),
                safe=True, prompt_len=17, seed=2),
}


def randomize(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight"):
                p.copy_(1 + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 2 and "embed_tokens" in name:
                # tied embeddings double as lm_head: kept small, or each token just predicts itself
                std = 0.15 if model.config.tie_word_embeddings else 1.0
                p.copy_(torch.randn(p.shape, generator=g) * std)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (1.2 / p.shape[-1] ** 0.5))


@torch.no_grad()
def greedy(model, ids, steps):
    out = model(input_ids=ids, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1, :].float()
    toks, seen = [], []
    for _ in range(steps):
        seen.append(logits[0].clone())
        nxt = int(torch.argmax(logits[0]))
        toks.append(nxt)
        out = model(input_ids=torch.tensor([[nxt]]), past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1, :].float()
    return torch.tensor(toks, dtype=torch.int64), torch.stack(seen)


def main():
    torch.set_num_threads(2)
    for name, case in CASES.items():
        d = os.path.join(OUT, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        cfg = LlamaConfig(**case["config"])
        torch.manual_seed(case["seed"])
        model = LlamaForCausalLM(cfg).eval()
        randomize(model, case["seed"])
        model.save_pretrained(d, safe_serialization=case["safe"])
        for extra in ("generation_config.json",):
            p = os.path.join(d, extra)
            if os.path.exists(p):
                os.remove(p)

        g = torch.Generator().manual_seed(100 + case["seed"])
        T = case["prompt_len"]
        ids = torch.randint(3, cfg.vocab_size, (1, T), generator=g)
        batch = torch.randint(3, cfg.vocab_size, (2, 9), generator=g)
        with torch.no_grad():
            logits = model(input_ids=ids).logits[0].float()
            batch_logits = model(input_ids=batch).logits[:, -1, :].float()
        tok32, steps32 = greedy(model, ids, STEPS)

        bf = LlamaForCausalLM(cfg).eval()
        bf.load_state_dict(model.state_dict())
        bf = bf.to(torch.bfloat16)
        with torch.no_grad():
            logits_bf = bf(input_ids=ids).logits[0].float()
        tok_bf, _ = greedy(bf, ids, STEPS)

        save_file({
            "input_ids": ids.contiguous(),
            "logits_f32": logits.contiguous(),
            "greedy_f32": tok32,
            "step_logits_f32": steps32.contiguous(),
            "logits_bf16": logits_bf.contiguous(),
            "greedy_bf16": tok_bf,
            "batch_ids": batch.contiguous(),
            "batch_logits_f32": batch_logits.contiguous(),
        }, os.path.join(d, "expected.safetensors"))
        print(name, "greedy f32:", tok32.tolist())
        print(name, "greedy bf16:", tok_bf.tolist(), "bf16 vs f32 max |dlogit|:",
              float((logits_bf - logits).abs().max()), "max |logit|:", float(logits.abs().max()))
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Generated by tools/golden/llama.py (transformers 4.34.0, torch 2.11.0); see its docstring.\n")


if __name__ == "__main__":
    main()
