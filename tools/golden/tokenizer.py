"""Goldens for the tokenizer: transformers 4.34's slow LlamaTokenizer over a LLaMA-style model.

1. Trains a SentencePiece model the way LLaMA's was made (BPE, byte fallback, split digits, dummy
   prefix, identity normalizer, whitespace-only pieces) on a deterministic corpus
   -> tests/data/spm/llama_bpe.model
2. For legacy=True and legacy=False: LlamaTokenizer(model, legacy=...), add_tokens(VisionLLMv2's
   DEFAULT_TOKENS, special_tokens=True) as train.py does, pad = unk as the model sets it,
   save_pretrained -> tests/data/golden/tokenizer/legacy_{true,false}/ (the JSON files only; the test
   puts the model file next to them), then reloads with from_pretrained(use_fast=False), as the
   checkpoint is loaded, and records for every case string: input_ids (with BOS), tokenize() pieces,
   decode(ids) and decode(ids, skip_special_tokens=True)
   -> tests/data/golden/tokenizer/cases.json

Run: .venv/bin/python tools/golden/tokenizer.py   (pins in tools/golden/requirements.txt)
"""
import glob
import json
import os
import shutil
import tempfile

import sentencepiece as spm
from transformers import LlamaTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SPM_OUT = os.path.join(ROOT, "tests", "data", "spm", "llama_bpe.model")
OUT = os.path.join(ROOT, "tests", "data", "golden", "tokenizer")

# visionllmv2/constant.py DEFAULT_TOKENS, in dict order
DEFAULT_TOKENS = ["[PAD]", "<image>", "<im_patch>", "<region>", "<img>", "</img>", "<reg>", "</reg>", "<det>",
                  "</det>", "<grd>", "</grd>", "[DET]", "[GRD]", "[SEG]", "[POSE]", "[GEN]", "[EDIT]", "[EMB]",
                  "[EMB2]", "[EMB3]", "[EMB4]", "[EMB5]", "[EMB6]", "[EMB7]", "[EMB8]"]

SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
          "detailed, and polite answers to the user's questions.")

EXTRA_CORPUS = [
    "Café naïve résumé façade jalapeño Ångström Øresund Straße Œuvre élève à la carte.",
    "日本語のテキストと中文文本，还有한국어 문장。",
    "Emoji: 😀 😂 👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️ ✨ 🚀",
    "Numbers 0 1 2 3 4 5 6 7 8 9 10 100 2024 3.14159 1,000,000 -42 +7 1e-5",
    "Tabs\tand\nnewlines\r\nand   runs    of spaces.",
    "Detect the person and the dog in the image. Please segment the cat. Where is the red car?",
    "USER: ASSISTANT: The image shows a man riding a horse on a beach at sunset.",
    "Greek αβγδε, Cyrillic привет мир, Arabic مرحبا بالعالم, Hebrew שלום עולם, Hindi नमस्ते दुनिया.",
    "Code: def f(x): return x**2 + 1  # comment\nfor i in range(10): print(i)",
]


def corpus_file(tmp):
    lines = []
    for path in sorted(glob.glob("/usr/share/common-licenses/*")):
        if os.path.isfile(path) and os.path.basename(path) in ("Apache-2.0", "Artistic", "BSD", "GPL-3",
                                                                 "LGPL-2.1", "MPL-2.0"):
            with open(path, encoding="utf-8", errors="ignore") as f:
                lines += [l.rstrip("\n") for l in f if l.strip()]
    lines += EXTRA_CORPUS * 20
    p = os.path.join(tmp, "corpus.txt")
    with open(p, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return p


def train(tmp):
    prefix = os.path.join(tmp, "llama_bpe")
    spm.SentencePieceTrainer.train(
        input=corpus_file(tmp), model_prefix=prefix, model_type="bpe", vocab_size=1200,
        byte_fallback=True, split_digits=True, add_dummy_prefix=True, remove_extra_whitespaces=False,
        normalization_rule_name="identity", allow_whitespace_only_pieces=True, character_coverage=0.9995,
        unk_id=0, bos_id=1, eos_id=2, pad_id=-1, num_threads=1, shuffle_input_sentence=False,
        max_sentence_length=8192, minloglevel=2)
    os.makedirs(os.path.dirname(SPM_OUT), exist_ok=True)
    shutil.copy(prefix + ".model", SPM_OUT)


def cases():
    c = [
        "", " ", "  ", "   ", "\n", "\n\n", "\t", " \n ", "a", " a", "a ", "  a  ", "Hello", "Hello world",
        "Hello  world", "Hello   world!", " Hello world", "Hello world ", "hello\nworld", "hello\n\nworld",
        "hello\tworld", "hello\r\nworld", "line one\nline two\nline three", "The quick brown fox jumps over the lazy dog.",
        "THE QUICK BROWN FOX", "don't won't can't it's I'm you're", "e.g. i.e. etc. Mr. Dr. St.",
        "0", "7", "42", "123", "2024", "1234567890", "3.14159", "-1", "+1", "1e-5", "1,000,000", "$100.00",
        "50%", "#1", "v1.2.3", "2x2", "ab12cd34", "12 34 56", "phone: 555-0123", "x=1; y=2;",
        "Café", "naïve", "résumé", "jalapeño", "Ångström", "Straße", "élève", "e\u0301", "n\u0303", "A\u030a",
        "日本語", "中文文本", "한국어", "привет мир", "αβγ", "مرحبا", "שלום", "नमस्ते", "ไทย", "Ελληνικά",
        "😀", "😀😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "✨ sparkle ✨", "emoji 🚀 in text", "🙂🙃",
        "\u00a0", "a\u00a0b", "a\u3000b", "\u2003em space", "zero\u200bwidth", "\u200d", "\ufeffbom",
        "▁", "▁a", "a▁b", "▁▁", " ▁ ", "<unk>", "<s>", "</s>", "a<s>b", "a </s> b", "</s>USER:", "<s> hi",
        "hi </s>", "<pad>", "<0x0A>", "<0xE2>", "[PAD]", "<image>", "<im_patch>", "<region>", "<img>", "</img>",
        "<reg>", "</reg>", "<det>", "</det>", "<grd>", "</grd>", "[DET]", "[GRD]", "[SEG]", "[POSE]", "[GEN]",
        "[EDIT]", "[EMB]", "[EMB2]", "[EMB8]", "[EMB9]", "<image>\n", "<image>\nWhat is this?",
        " <image> ", "a<image>b", "a <image> b", "a  <image>  b", "a\n<image>\nb", "<image><image>",
        "<image> <image>", "<im_patch>" * 5, "<im_patch>" * 3 + " x", " " + "<im_patch>" * 4, "<img>" + "<im_patch>" * 2 + "</img>",
        "<reg>region1<region></reg>", "<reg>region1<region></reg>, <reg>region2<region></reg>",
        "Please detect [DET] the person", "[DET][EMB][EMB2][EMB3][EMB4]", "[GEN] a photo of a cat",
        "[SEG]", "text[SEG]text", "text [SEG] text", "[DET]\n", "[EDIT] make it snowy",
        "<image>What", "<image> What", "<image>  What", "What<image>", "What <image>", "What  <image>",
        "</s></s>", "<s></s>", "<s> <s>", "USER: hi ASSISTANT: hello</s>USER: bye ASSISTANT:",
        SYSTEM, SYSTEM + " USER: <image>\nWhat is this? ASSISTANT:",
        SYSTEM + " USER: <image>\nPlease detect the person in the image. ASSISTANT: Sure, [DET]</s>",
        SYSTEM + " USER: Where is <reg>region1<region></reg>? ASSISTANT:",
        "<unk> text", "text <unk>", "<<image>>", "<image", "image>", "<im_patch", "[DET", "DET]", "<<>>", "[]",
        "a" * 50, "ab" * 30, " " * 10 + "x", "x" + " " * 10, "\n" * 5 + "x", "tab\t\ttab", "mixed \t\n whitespace",
        "CamelCaseWordsHere", "snake_case_words_here", "kebab-case-words", "URL https://example.com/a?b=c&d=e",
        "email user@example.com", "path/to/file.txt", "C:\\Windows\\System32", "{\"json\": [1, 2, 3]}",
        "<html><body>hi</body></html>", "a < b > c", "a<b>c", "x <= y >= z", "[1, 2, 3]", "(a) [b] {c}",
        "~!@#$%^&*()_+-=`", "\"quoted\" 'single'", "…", "–—", "“smart quotes”", "‘single’", "¿Qué?", "¡Hola!",
        "½ ¼ ¾", "© ® ™", "° ± × ÷", "€ £ ¥ ₹", "→ ← ↑ ↓", "∑ ∫ √ ∞", "\u0000x", "\x01\x02", "\x7f",
    ]
    # combinations: added tokens against text with every whitespace arrangement
    for tok in ["<image>", "[DET]", "</s>", "<s>", "<region>", "[EMB4]"]:
        for left in ["", "a", "a ", "a  ", " ", "\n", "a\n"]:
            for right in ["", "b", " b", "  b", "\nb"]:
                s = left + tok + right
                if s not in c:
                    c.append(s)
    return c


def record(tok, strings):
    out = []
    for s in strings:
        ids = tok(s).input_ids
        out.append({
            "ids": ids,
            "pieces": tok.tokenize(s),
            "decode": tok.decode(ids),
            "decode_skip": tok.decode(ids, skip_special_tokens=True),
        })
    return out


def main():
    tmp = tempfile.mkdtemp()
    try:
        train(tmp)
        strings = cases()
        result = {"strings": strings}
        for legacy in (True, False):
            d = os.path.join(OUT, "legacy_" + str(legacy).lower())
            shutil.rmtree(d, ignore_errors=True)
            build = os.path.join(tmp, "build_" + str(legacy))
            tok = LlamaTokenizer(SPM_OUT, legacy=legacy)
            tok.add_tokens(DEFAULT_TOKENS, special_tokens=True)
            tok.pad_token = tok.unk_token
            tok.save_pretrained(build)
            loaded = LlamaTokenizer.from_pretrained(build, use_fast=False)
            assert loaded.legacy == legacy
            os.makedirs(d)
            for f in sorted(os.listdir(build)):
                if f.endswith(".json"):
                    shutil.copy(os.path.join(build, f), d)
            result["legacy_" + str(legacy).lower()] = record(loaded, strings)
            print("legacy", legacy, "vocab", len(loaded), "cases", len(strings))
        with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False, indent=0)
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
