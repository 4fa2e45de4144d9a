"""Goldens for the tokenizer: transformers 4.34's slow LlamaTokenizer over a LLaMA-style model.

1. Trains a SentencePiece model the way LLaMA's was made (BPE, byte fallback, split digits, dummy
   prefix, identity normalizer, whitespace-only pieces) on a deterministic corpus
   -> tests/data/spm/llama_bpe.model
2. legacy_true / legacy_false: the checkpoint's tokenizer as VisionLLMv2's train.py makes it. A
   Vicuna-style source directory (tokenizer_config.json with AddedToken dicts and `legacy`,
   special_tokens_map.json, no added tokens) is loaded with from_pretrained(use_fast=False, ...),
   pad = unk, add_tokens(list(DEFAULT_TOKENS.values()), special_tokens=True) (which also rewrites
   <s>, </s>, <unk> in added_tokens_decoder with lstrip/rstrip true, as in the released files),
   save_pretrained, and reloaded as the model loads it.
3. hf_legacy_format: a directory as transformers < 4.34 wrote it (no added_tokens_decoder):
   added_tokens.json (non-special tokens, overlapping ones that trip the Trie), special tokens in
   special_tokens_map.json given as strings and as dicts (single_word, lstrip-only, rstrip-only),
   special tokens not in the vocabulary (new ids), no `legacy` key (the 4.34 default),
   clean_up_tokenization_spaces on.
   For each variant only the JSON files go to tests/data/golden/tokenizer/<variant>/ (the tests put
   the model file next to them); cases.json holds, for every case string and variant: input_ids
   (BOS added as configured), tokenize() pieces, decode(ids) and decode(ids, skip_special_tokens=True).

Run: .venv/bin/python tools/golden/tokenizer.py   (pins in tools/golden/requirements.txt)
"""
import glob
import json
import os
import shutil
import tempfile

import sentencepiece as spm
import transformers
from transformers import LlamaTokenizer

assert transformers.__version__ == "4.34.0", transformers.__version__

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
SPM_OUT = os.path.join(ROOT, "tests", "data", "spm", "llama_bpe.model")
OUT = os.path.join(ROOT, "tests", "data", "golden", "tokenizer")

# visionllmv2/constant.py DEFAULT_TOKENS.values(), in dict order (train.py adds all of them, <s>, </s>,
# <unk> included: those exist already and keep their ids)
DEFAULT_TOKENS = ["[PAD]", "<s>", "</s>", "<unk>", "<image>", "<im_patch>", "<region>", "<img>", "</img>", "<reg>",
                  "</reg>", "<det>", "</det>", "<grd>", "</grd>", "[DET]", "[GRD]", "[SEG]", "[POSE]", "[GEN]", "[EDIT]",
                  "[EMB]", "[EMB2]", "[EMB3]", "[EMB4]", "[EMB5]", "[EMB6]", "[EMB7]", "[EMB8]"]

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
    # the trainer records its input and output paths (a random temporary directory): fix them, so that the
    # model file comes out byte-identical on every run
    from sentencepiece import sentencepiece_model_pb2
    model = sentencepiece_model_pb2.ModelProto()
    with open(prefix + ".model", "rb") as f:
        model.ParseFromString(f.read())
    del model.trainer_spec.input[:]
    model.trainer_spec.input.append("corpus.txt")
    model.trainer_spec.model_prefix = "llama_bpe"
    os.makedirs(os.path.dirname(SPM_OUT), exist_ok=True)
    with open(SPM_OUT, "wb") as f:
        f.write(model.SerializeToString(deterministic=True))


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



# strings for the hf_legacy_format variant's extra tokens (appended, so earlier indices stay put)
EXTRA_CASES = [
    "<tool>", "x <tool> y", "x<tool>y", "x  <tool>  y", "<sw>", "a<sw>b", "a <sw> b", "a <sw>b", "a<sw> b",
    "<sw><sw>", " <sw> ", "x <ls> y", "x<ls>y", "x <ls>y", "x<ls> y", "x <rs> y", "x<rs>y", "x <rs>y",
    "x<rs> y", "<ls><rs>", "<pad>", "x <pad> y", "<new>", "x <new> y", "x<new>y", "hello world", "world",
    " world ", "world world", "the world is round", "worldwide", "a  world  b", "<tag-a>", "<tagX-a>",
    "<tag-b>", "tag", "tags", "a tag here", "tag <tag-a> tag", "<tag-a>tag", "x<tagX-a>y", "<<tag-a>>",
    "don't stop . ok ? yes ! a , b", "it ' s", "I 'm here", "they 're and we 've", "can n't", "a .",
    "end .", "x ,y", " ' ", "hello . world", "<image> .", "[DET] , [SEG] !", "world .", "<tool> ?",
]

HF_ADDED = {"<tool>": 1200, "<sw>": 1201, "<ls>": 1202, "<rs>": 1203, "world": 1204, "<tag-a>": 1205, "tag": 1206}


def added_token(content, **flags):
    d = {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    d.update(flags)
    return d


def vicuna_source(d, legacy):
    """A directory like lmsys/vicuna-7b-v1.5's tokenizer files (written by an older transformers)."""
    os.makedirs(d)
    shutil.copy(SPM_OUT, os.path.join(d, "tokenizer.model"))
    typed = lambda c: dict(added_token(c), __type="AddedToken")
    cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": typed("<s>"),
           "clean_up_tokenization_spaces": False, "eos_token": typed("</s>"), "legacy": legacy,
           "model_max_length": 4096, "pad_token": None, "padding_side": "right", "sp_model_kwargs": {},
           "tokenizer_class": "LlamaTokenizer", "unk_token": typed("<unk>")}
    smap = {"bos_token": added_token("<s>"), "eos_token": added_token("</s>"), "pad_token": "<unk>",
            "unk_token": added_token("<unk>")}
    write_json(os.path.join(d, "tokenizer_config.json"), cfg)
    write_json(os.path.join(d, "special_tokens_map.json"), smap)


def hf_legacy_format(d):
    os.makedirs(d)
    typed = lambda c: dict(added_token(c), __type="AddedToken")
    cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": typed("<s>"),
           "clean_up_tokenization_spaces": True, "eos_token": typed("</s>"), "model_max_length": 4096,
           "pad_token": None, "sp_model_kwargs": {}, "tokenizer_class": "LlamaTokenizer", "unk_token": typed("<unk>")}
    smap = {"additional_special_tokens": ["<tool>", added_token("<sw>", single_word=True),
                                          added_token("<ls>", lstrip=True), added_token("<rs>", rstrip=True), "<new>"],
            "bos_token": added_token("<s>"), "eos_token": added_token("</s>"), "pad_token": "<pad>",
            "unk_token": added_token("<unk>")}
    write_json(os.path.join(d, "tokenizer_config.json"), cfg)
    write_json(os.path.join(d, "special_tokens_map.json"), smap)
    write_json(os.path.join(d, "added_tokens.json"), HF_ADDED)


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


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


def load(d):
    tok = LlamaTokenizer.from_pretrained(d, use_fast=False)
    assert isinstance(tok, LlamaTokenizer)
    return tok


def keep_json(build, d):
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for f in sorted(os.listdir(build)):
        if f.endswith(".json"):
            shutil.copy(os.path.join(build, f), d)


def main():
    tmp = tempfile.mkdtemp()
    try:
        train(tmp)
        strings = cases() + [s for s in EXTRA_CASES if s not in cases()]
        result = {"strings": strings}
        for legacy in (True, False):
            name = "legacy_" + str(legacy).lower()
            src, build = os.path.join(tmp, "src_" + name), os.path.join(tmp, "build_" + name)
            vicuna_source(src, legacy)
            # train.py: AutoTokenizer.from_pretrained(llm_path, model_max_length=..., padding_side="right",
            # use_fast=False, add_eos_token=False); pad_token = unk_token; add_tokens(DEFAULT_TOKENS, special)
            tok = LlamaTokenizer.from_pretrained(src, model_max_length=4096, padding_side="right", use_fast=False,
                                                 add_eos_token=False)
            tok.pad_token = tok.unk_token
            assert tok.add_tokens(DEFAULT_TOKENS, special_tokens=True) == len(DEFAULT_TOKENS) - 3
            tok.save_pretrained(build)
            loaded = load(build)
            assert loaded.legacy == legacy
            keep_json(build, os.path.join(OUT, name))
            result[name] = record(loaded, strings)
            print(name, "vocab", len(loaded), "cases", len(strings))
        build = os.path.join(tmp, "hf_legacy_format")
        hf_legacy_format(build)
        shutil.copy(SPM_OUT, os.path.join(build, "tokenizer.model"))
        loaded = load(build)
        assert loaded.legacy and loaded.convert_tokens_to_ids("<pad>") == 1207, loaded.convert_tokens_to_ids("<pad>")
        keep_json(build, os.path.join(OUT, "hf_legacy_format"))
        result["hf_legacy_format"] = record(loaded, strings)
        print("hf_legacy_format vocab", len(loaded), "cases", len(strings))
        with open(os.path.join(OUT, "cases.json"), "w", encoding="utf-8") as f:
            json.dump(result, f, ensure_ascii=False, indent=0)
            f.write("\n")
    finally:
        shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
