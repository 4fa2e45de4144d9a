"""End-to-end goldens for `Engine::detect` / `visionllm detect` (issue 5): boxes, scores and masks of a Python
reference of VisionLLM v2's perception path on the tiny random checkpoint that
`visionllm make-tiny --components llm,vision,region,gdino --dtype f32 --seed 0` writes (the C++ test writes the same one),
for the images in ../shared/data/images.

The reference (shared/reference/visionllmv2.md §1.4 c, §5, §6.1, §8):
  * LLM side (stage A, transformers 4.34 as chat.py): the teacher-forced prompt of datasets/coco_llava.py
    (QUESTIONS[0] / YES[0], "<image>\\n" + question, conv vicuna_v1 with the answer and "</s>"), anyres tiles ->
    CLIP -> vl_bridge -> <im_patch> rows; the 4 rows after every [DET] become emb_embeddings_det; one forward;
    the final post-norm hidden states at the [EMB]..[EMB4] ids, grouped by 4 -> text_query [1, G, 4, hidden].
  * Generation with routing: the same checkpoint with two lm_head rows replaced so that greedy decoding answers
    "[DET]" and then "</s>" (row [DET] = the direction of the hidden state at "ASSISTANT:", row </s> = that of
    the last query after [DET]; every other row zero). The queries are inserted after the generated [DET]
    (§5.1); their hidden states equal one pass over prompt + [DET] + queries (§5.2), which is what the
    reference computes.
  * Decoder (stage B, transformers 4.40.2 through tools/golden/gdino.py's reference): the detection image as
    mmdet's test pipeline (cv2 imread BGR, keep-ratio resize to 1333x800 with cv2 INTER_LINEAR and mmcv's
    rounding, normalise, to RGB), zero padding to a multiple of 32, pixel_mask = pixel_values[:, 0] != 0; the
    Grounding DINO reference; eval_det.py's post-processing (sigmoid over the G columns, top-k over queries x G,
    cxcywh -> xyxy times the original size; masks: x4 bilinear, crop to the resized image, resize to the
    original, sigmoid > 0.5) and pycocotools RLE.

Writes tests/data/golden/detect_e2e/expected.json.
Run: .venv/bin/python tools/golden/detect.py [path/to/visionllm]
  (stage A runs with the .venv's transformers 4.34; stage B re-runs this script with
   PYTHONPATH=.venv/tf440 for transformers 4.40.2; cv2 4.10.0.84 and pycocotools 2.0.8 from the .venv)
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "data", "golden", "detect_e2e")
IMAGES = os.path.join(ROOT, "..", "shared", "data", "images")
CLASSES = ["cat", "dog", "remote control"]
TOPK = 20          # detections kept per case (the evaluation keeps 100; fewer keeps the golden small)
MASKS = 5          # masks stored for the best few
GEN_IMAGE = "cat_dog.jpeg"
GEN_PROMPT = "Please detect the cat in this image."


# ---------------------------------------------------------------- stage A: the LLM side (transformers 4.34)

def stage_a(ckpt, work):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import chat  # noqa: E402  (the chat golden's reference: CLIP, bridge, tokenizer, prompt ids)
    from PIL import Image

    ref = chat.Reference(ckpt)
    tok = ref.tok
    det = tok.convert_tokens_to_ids("[DET]")
    emb_ids = [tok.convert_tokens_to_ids(t) for t in ("[EMB]", "[EMB2]", "[EMB3]", "[EMB4]")]
    state = chat.load_state(ckpt)
    qdet = state["emb_embeddings_det.weight"]
    impatch = tok.convert_tokens_to_ids("<im_patch>")

    def image_rows(path):
        tiles, _ = chat.dynamic_preprocess(Image.open(path).convert("RGB"), ref.S, 4)
        px = torch.stack([ref.proc.preprocess(t, return_tensors="pt")["pixel_values"][0] for t in tiles])
        hs = ref.vis(px, output_hidden_states=True).hidden_states
        rows = ref.bridge(hs[ref.cfg["vis_output_layer"]][:, 1:]).reshape(-1, ref.llm.config.hidden_size)
        return rows, len(tiles)

    def embed(ids, rows):
        e = ref.llm.get_input_embeddings()(torch.tensor([ids]))[0].clone()
        sel = torch.tensor(ids) == impatch
        e[sel] = rows
        return e

    def hidden(e):
        out = ref.llm(inputs_embeds=e[None], output_hidden_states=True)
        return out.hidden_states[-1][0]  # after the final RMSNorm

    q = "Can you analyze the image and identify the " + ", ".join(CLASSES) + " present?"
    s = "[DET][EMB][EMB2][EMB3][EMB4]"
    a = "Yes, here are the results for " + (s + ", ").join(CLASSES) + s + " in the image."
    cases = {}
    with torch.no_grad():
        for name in sorted(os.listdir(IMAGES)):
            path = os.path.join(IMAGES, name)
            rows, n_tiles = image_rows(path)
            prompt = chat.SYSTEM + " USER: <image>\n" + q + " ASSISTANT: " + a + "</s>"
            ids = ref.prompt_ids(prompt, n_tiles)
            e = embed(ids, rows)
            pos = [i for i, t in enumerate(ids) if t == det]
            for p in pos:
                assert ids[p + 1:p + 5] == emb_ids, "the answer did not tokenise into [DET][EMB]..[EMB4]"
                e[p + 1:p + 5] = qdet
            h = hidden(e)
            sel = [p + 1 + k for p in pos for k in range(4)]
            cases[name] = dict(mode="classes", ids=ids, text_query=h[sel].reshape(len(pos), 4, -1),
                               phrases=CLASSES)
        # generation with routing, on one image
        path = os.path.join(IMAGES, GEN_IMAGE)
        rows, n_tiles = image_rows(path)
        prompt = chat.SYSTEM + " USER: <image>\n" + GEN_PROMPT + " ASSISTANT:"
        ids = ref.prompt_ids(prompt, n_tiles)
        e = torch.cat([embed(ids, rows), ref.llm.get_input_embeddings()(torch.tensor([det])), qdet])
        h = hidden(e)
        h_p, h_q = h[len(ids) - 1], h[-1]
        lm = torch.zeros_like(ref.llm.lm_head.weight)
        lm[det] = 10 * h_p / h_p.norm()
        lm[tok.eos_token_id] = 10 * h_q / h_q.norm()
        # check greedy decoding gives [DET] then </s>
        l_p, l_q = lm @ h_p, lm @ h_q
        assert int(l_p.argmax()) == det and int(l_q.argmax()) == tok.eos_token_id, "lm_head patch does not route"
        cases["generate:" + GEN_IMAGE] = dict(mode="prompt", image=GEN_IMAGE, prompt=GEN_PROMPT, ids=ids,
                                              text_query=h[len(ids) + 1:len(ids) + 5][None],
                                              lm_head_rows={str(det): lm[det].tolist(),
                                                            str(tok.eos_token_id): lm[tok.eos_token_id].tolist()},
                                              generated=[det, tok.eos_token_id], phrases=[""])
    torch.save(cases, os.path.join(work, "stage_a.pt"))


# ---------------------------------------------------------------- stage B: the decoder (transformers 4.40.2)

def detection_image(path):
    """mmdet 2.x test pipeline of coco_llava.py + nested_tensor_from_tensor_list(32) + the model's pixel mask."""
    import cv2
    img = cv2.imread(path, cv2.IMREAD_COLOR)  # BGR, as mmcv.imread
    h, w = img.shape[:2]
    scale = min(1333 / max(h, w), 800 / min(h, w))
    nw, nh = int(w * scale + 0.5), int(h * scale + 0.5)
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).astype(np.float32)
    img = (img - mean) / std
    ph, pw = (nh + 31) // 32 * 32, (nw + 31) // 32 * 32
    px = torch.zeros(1, 3, ph, pw)
    px[0, :, :nh, :nw] = torch.from_numpy(img).permute(2, 0, 1)
    return px, px[:, 0] != 0, (w, h), (nw, nh)


def post_process(logits, boxes, masks, G, size, resized, topk):
    import torch.nn.functional as F
    from pycocotools import mask as mask_util
    W, H = size
    prob = logits[0, :, :G].sigmoid()
    Q = prob.shape[0]
    scores, idx = prob.reshape(-1).topk(min(topk, Q * G))
    qi, labels = idx // G, idx % G
    cx, cy, bw, bh = boxes[0, qi].unbind(-1)
    xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1) * torch.tensor([W, H, W, H])
    out = []
    m = masks[0, qi[:MASKS]][None].float()
    m = F.interpolate(m, scale_factor=4, mode="bilinear", align_corners=False)[..., :resized[1], :resized[0]]
    m = F.interpolate(m, size=(H, W), mode="bilinear", align_corners=False)[0].sigmoid() > 0.5
    for k in range(len(scores)):
        d = dict(label=int(labels[k]), query=int(qi[k]), score=float(scores[k]), box=[float(v) for v in xyxy[k]])
        if k < MASKS:
            rle = mask_util.encode(np.asfortranarray(m[k].numpy().astype(np.uint8)))
            d["mask_rle"] = rle["counts"].decode()
            d["mask_area"] = int(mask_util.area(rle))
        out.append(d)
    return out


def stage_b(ckpt, work):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gdino  # the Grounding DINO reference (transformers 4.40.2 + VisionLLM v2's changes)
    import chat
    cfg = json.load(open(os.path.join(ckpt, "config.json")))
    state = {k[len("gdino."):]: v for k, v in chat.load_state(ckpt).items() if k.startswith("gdino.")}
    model = gdino.build_reference(cfg["gdino_config"], state)
    cases = torch.load(os.path.join(work, "stage_a.pt"))
    expected = {}
    with torch.no_grad():
        for name, c in cases.items():
            image = c.get("image", name)
            px, pm, size, resized = detection_image(os.path.join(IMAGES, image))
            tq = c["text_query"][None].float()
            G = tq.shape[1]
            out = gdino.run_reference(model, px, pm, tq, torch.ones(1, G, dtype=torch.bool))
            last = max(int(k.split(".")[1]) for k in out if k.startswith("logits."))
            dets = post_process(out[f"logits.{last}"], out[f"boxes.{last}"], out[f"masks.{last}"], G, size, resized,
                                TOPK)
            e = dict(image=image, mode=c["mode"], prompt_ids=c["ids"], phrases=c["phrases"], size=list(size),
                     resized=list(resized), detections=dets)
            if c["mode"] == "prompt":
                e.update(prompt=c["prompt"], lm_head_rows=c["lm_head_rows"], generated=c["generated"])
            expected[name] = e
            print(name, G, [(d["label"], round(d["score"], 4)) for d in dets[:3]])
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(dict(make_tiny=["--components", "llm,vision,region,gdino", "--dtype", "f32", "--seed", "0"],
                       classes=CLASSES, topk=TOPK, masks=MASKS, cases=expected), f)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--stage-b":
        stage_b(sys.argv[2], sys.argv[3])
        return
    vl = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build", "bin", "visionllm")
    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as d:
        ckpt, work = os.path.join(d, "ckpt"), d
        subprocess.run([vl, "make-tiny", "-o", ckpt, "--components", "llm,vision,region,gdino", "--dtype", "f32", "--seed",
                        "0", "--quiet"], check=True)
        stage_a(ckpt, work)
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, ".venv", "tf440"))
        subprocess.run([sys.executable, os.path.abspath(__file__), "--stage-b", ckpt, work], check=True, env=env)
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Generated by tools/golden/detect.py (transformers 4.34.0 / 4.40.2, torch 2.11.0, opencv-python-headless "
                "4.10.0.84, pycocotools 2.0.8); see its docstring.\n")


if __name__ == "__main__":
    main()
