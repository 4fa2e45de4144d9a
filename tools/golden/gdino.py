"""Golden for Grounding DINO as VisionLLM v2 runs it: transformers 4.40.2 GroundingDinoForObjectDetection,
driven without BERT and patched wherever VisionLLM v2's OVGroundingDinoForObjectDetection
(visionllmv2/model/grounding_dino/modeling_ov_grounding_dino_mask_dn.py, "OV" below; its forward_test is the
inference path) differs from it, plus what transformers lacks (patch2query, the 4-stage backbone, the mask head),
written here in plain torch.

Reference versions: transformers 4.40.2 (GroundingDino*, Swin*), torch 2.11.0, safetensors 0.8.0, opencv 4.10.

Usage (from the project root):
    PYTHONPATH=.venv/tf440 .venv/bin/python tools/golden/gdino.py
writes tests/data/golden/gdino/:
    config.json            the gdino_config (VisionLLMv2 layout: OV's GroundingDinoConfig.to_dict() + mask_dim, norm,
                           l_hidden_size, num_embs; backbone_config model_type swin, out_features stage1..stage4)
    checkpoint/            the checkpoint (model.safetensors.index.json + 2 shards, as save_pretrained shards it) in
                           the VisionLLM key layout ("gdino." + OV's state_dict() names, every
                           alias included: bbox_embed.{i}, model.decoder.bbox_embed.{i}, mask_embed.{i};
                           Swin relative_position_index buffers as int64)
    layout.json            that layout: [name, shape, dtype, alias_of] per key (alias_of: the first key sharing its
                           storage, or null); plus "full": the keys and shapes of the released model's gdino
                           (configs/visionllmv2-7b.config.json's gdino_config)
    image.safetensors      pixel_values [1,3,96,160] (a 90x130 photo, zero padded), pixel_mask [1,96,160] bool and
                           the backbone's maps backbone.stage{1..4} (the same for every case)
    case_<name>.safetensors  text_query, text_query_mask, then per decoder layer l: logits.{l}, boxes.{l}, masks.{l},
                           and intermediates (see CASES and run_reference)
    cases.json             per case: description, shapes, the fp32-vs-fp64 differences of every output (the noise
                           floor of the reference itself) and the top-k selection margin
Importable: build_reference(gdino_config, state_dict) and run_reference(ref, pixel_values, pixel_mask, text_query,
text_query_mask) (the end-to-end golden uses them on a make-tiny checkpoint); load_visionllm_gdino(model_dir) reads
a VisionLLMv2 model directory's gdino_config and gdino.* tensors; vllm_state_dict(ref).

Checked (once, outside the repo) against OV's own module, run with stand-ins for its detectron2/fvcore/timm/mmcv/mmdet
imports: its state_dict() has exactly this checkpoint's 403 keys and shapes, and forward_test reproduces every
case's logits, boxes, masks (all layers), mask_features, encoder outputs and reference boxes bit for bit.

Differences between OV and transformers 4.40.2, found by diffing them class by class, and what this script does:
 1. Text features: OV builds no BERT and no text_projection; text = patch2query(text_query).mean(-2), patch2query =
    MLP(l_hidden -> d -> d -> d, ReLU between; keys patch2query.layers.{0,1,2}) applied per [EMB] query, the mean over
    the num_embs queries of a group. Here: the HF text_backbone is replaced by a parameter-free stub returning these
    features and text_projection by Identity.
 2. Text masks: OV's generate_masks_with_text_query_masks (self-attention: a block over the first n_valid tokens,
    identity on the padding; position ids 0..n_valid-1 then 0) replaces the BERT special-token splitting. Here: HF's
    module-level generate_masks_with_special_tokens_and_transfer_map is swapped for it while the reference runs; the
    valid mask rides in input_ids.
 3. Text enhancer attention: OV uses nn.MultiheadAttention (self_attn.in_proj_weight [3d, d], in_proj_bias,
    out_proj) with a boolean attn_mask (True = blocked -> -inf); HF has query/key/value/out_proj Linears and adds
    (1 - mask) * finfo(fp16).min. OV's model passes the block mask un-negated to the encoder (HF negates it twice);
    both end up blocking the same pairs, and since every row keeps its diagonal the -inf and -65504 forms give equal
    softmaxes. Here: nn.MultiheadAttention with OV's boolean mask.
 4. Decoder self-attention and text cross-attention: nn.MultiheadAttention in OV (in_proj_weight/in_proj_bias/out_proj),
    and OV's text cross-attention masks the padded text tokens (key_padding_mask = ~text_token_mask) where HF 4.40.2
    passes no mask ("TODO fix cross-attention mask"). Here: OV's modules and mask.
 5. inverse_sigmoid: OV uses log(clamp(x, eps) / clamp(1 - x, eps)) after clamp(x, 0, 1), eps 1e-5, in the decoder's
    box refinement and in the heads; HF uses torch.special.logit(x, eps=1e-5), which clamps x to [eps, 1 - eps] first
    (different for saturated boxes). Here: torch.special.logit is replaced by OV's formula while the reference runs.
 6. Backbone: OV's Swin has 4 out_features (stage1..stage4, hidden_states_norms.stage1..4); stage1 (stride 4) feeds
    only the mask branch, the transformer takes features[1:] (stage2..4) and input_proj_vision is built on
    channels[-3:]. HF builds input_proj_vision over every out_feature, so HF is built with stage2..4 and its backbone
    swapped for a SwinBackbone with stage1..4 (same weights plus the stage1 norm) that keeps stage1 aside and returns
    stage2..4. The extra level (3x3 stride-2 conv + GN on stage4's map, in-channels = stage4's) is the same in both.
 7. Mask branch (absent in HF): the encoder's vision output split per level; lateral_convs[0] = 1x1 conv without bias
    + GroupNorm(32, d) on stage1; plus the bilinear (align_corners=False) upsampling of encoder level 0 to stride 4;
    output_convs[0] = 3x3 conv without bias + GN + ReLU; mask_features = 1x1 conv with bias (d -> mask_dim) (detectron2
    Conv2d: keys weight, norm.weight, norm.bias). Masks of decoder layer l = einsum("bqc,bchw->bqhw",
    mask_embed[l](h_l), mask_features), mask_embed = MLP(d, d, mask_dim, 3), one module shared by all layers (keys
    mask_embed.{i}). model.mask_embed is a second MLP used only for the training-time encoder-output masks: in the
    state dict, unused at inference. num_fpn_levels = max(num_feature_levels - 3, 1) (1 for the released 4 levels).
 8. LayerNorms: OV builds nn.LayerNorm(d) everywhere outside Swin (eps 1e-5, config.layer_norm_eps ignored); HF uses
    config.layer_norm_eps. The HF model is built with 1e-5 whatever the gdino_config says (the golden's says 1e-5).
 9. Decoder query_pos: OV's GroundingDinoDecoder.get_proposal_pos_embed (y, x, w, h order; d/2 features each) vs HF's
    get_sine_pos_embed(exchange_xy=True): the same formula; this script asserts they are bit-identical.
10. decoder_bbox_embed_share=False: OV clones one head per layer; HF 4.40.2 shares the last one built (a bug). Followed
    OV. In both, encoder_output_bbox_embed is a separate MLP whatever two_stage_bbox_embed_share says (the decoder's
    bbox_embed is still None when it is built).
11. Heads per layer (OV forward_test): logits = h_l @ text^T, -inf on padded text, padded to max_text_len with -inf;
    boxes = sigmoid(bbox_embed[l](h_l) + inverse_sigmoid(ref_l)), ref_0 = the two-stage reference, ref_l = the
    decoder's refined reference of layer l-1; everything cast to fp32.
12. two_stage=False crashes in OV (enc_topk_* and outputs_mask undefined): two_stage is required.
13. Multi-scale deformable attention: OV's CUDA kernel (value and weights cast to fp32) or the grid_sample fallback;
    here the grid_sample path (disable_custom_kernels) in fp32: the same math.
14. pixel_mask = pixel_values[:, 0] != 0, as VisionLLMv2's caller computes it (True = valid).
15. VisionLLMv2 pins transformers 4.34; its Swin is the same as 4.40.2's but for gradient checkpointing and docs.
    SwinBackbone runs its layers with always_partition=True: windows keep window_size (maps padded up to a multiple,
    shifted blocks keep their shift) even when a stage's map is smaller than a window; the tiny config (window 3, a
    3x5 stage4, 24x40 / 12x20 / 6x10 above) pads at every stage.
16. OV's config serialises the (unused) text config as text_backbone_config, not text_config; it is ignored here.

Weights are random and wide (layer-scale vision_param/text_param ~ N(0, 0.5), norms with random weight and bias,
random level_embed, query embeddings and sampling-offset biases) so that every path matters.
"""
import contextlib
import copy
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import transformers
import transformers.models.grounding_dino.modeling_grounding_dino as hfgd
from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection, SwinBackbone, SwinConfig
from transformers.modeling_outputs import BackboneOutput

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "data", "golden", "gdino")
INV_SIGMOID_EPS = 1e-5

# --------------------------------------------------------------------------------------------------------------
# configs


def tiny_gdino_config():
    """The tiny gdino_config of the golden, in the VisionLLMv2 layout (the model fields of
    configs/visionllmv2-7b.config.json's gdino_config)."""
    return {
        "model_type": "grounding-dino",
        "activation_function": "relu",
        "auxiliary_loss": True,
        "backbone_config": {
            "model_type": "swin",
            "image_size": 224,
            "patch_size": 4,
            "num_channels": 3,
            "embed_dim": 8,
            "depths": [2, 2, 2, 2],
            "num_heads": [1, 1, 2, 2],
            "window_size": 3,
            "mlp_ratio": 2.0,
            "qkv_bias": True,
            "hidden_act": "gelu",
            "hidden_dropout_prob": 0.0,
            "attention_probs_dropout_prob": 0.0,
            "drop_path_rate": 0.1,
            "use_absolute_embeddings": False,
            "layer_norm_eps": 1e-5,
            "encoder_stride": 32,
            "out_features": ["stage1", "stage2", "stage3", "stage4"],
            "out_indices": [1, 2, 3, 4],
            "stage_names": ["stem", "stage1", "stage2", "stage3", "stage4"],
        },
        "d_model": 64,
        "num_queries": 30,
        "encoder_layers": 2,
        "decoder_layers": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 96,
        "encoder_attention_heads": 4,
        "decoder_attention_heads": 4,
        "num_feature_levels": 4,
        "encoder_n_points": 2,
        "decoder_n_points": 3,
        "two_stage": True,
        "embedding_init_target": True,
        "query_dim": 4,
        "decoder_bbox_embed_share": True,
        "two_stage_bbox_embed_share": False,
        "max_text_len": 256,
        "position_embedding_type": "sine",
        "positional_embedding_temperature": 20,
        "layer_norm_eps": 1e-5,
        "dropout": 0.1,
        "attention_dropout": 0.0,
        "activation_dropout": 0.0,
        "text_enhancer_dropout": 0.0,
        "fusion_dropout": 0.0,
        "fusion_droppath": 0.1,
        "disable_custom_kernels": False,
        "init_std": 0.02,
        "is_encoder_decoder": True,
        "text_backbone_config": {"model_type": "grounding-dino-text-prenet", "vocab_size": 30522},
        # added by VisionLLMv2's train.py
        "mask_dim": 32,
        "norm": "GN",
        "l_hidden_size": 48,
        "num_embs": 4,
    }


# the GroundingDinoConfig fields the model reads (everything else in a gdino_config is ignored)
_HF_FIELDS = ["num_queries", "encoder_layers", "encoder_ffn_dim", "encoder_attention_heads", "decoder_layers",
              "decoder_ffn_dim", "decoder_attention_heads", "activation_function", "d_model", "position_embedding_type",
              "num_feature_levels", "encoder_n_points", "decoder_n_points", "two_stage", "max_text_len",
              "embedding_init_target", "query_dim", "decoder_bbox_embed_share", "two_stage_bbox_embed_share",
              "positional_embedding_temperature"]


def _check_config(g):
    if not g.get("two_stage", True):
        raise ValueError("gdino_config.two_stage must be true (OV's forward fails without it)")
    bb = g["backbone_config"]
    if bb.get("model_type") != "swin":
        raise ValueError("gdino_config.backbone_config.model_type must be swin")
    if list(bb.get("out_features", [])) != ["stage1", "stage2", "stage3", "stage4"]:
        raise ValueError("gdino_config.backbone_config.out_features must be stage1..stage4")
    if g.get("norm", "GN") != "GN":
        raise ValueError("gdino_config.norm must be GN")
    if g.get("query_dim", 4) != 4:
        raise ValueError("gdino_config.query_dim must be 4")
    if g["d_model"] % 32:
        raise ValueError("gdino_config.d_model must be a multiple of 32 (GroupNorm(32, d_model))")


def hf_config(g):
    """transformers GroundingDinoConfig for a gdino_config dict: the backbone with stage2..4 (see 6.), a throwaway
    tiny BERT text config, the PyTorch deformable-attention path."""
    _check_config(g)
    kw = {k: g[k] for k in _HF_FIELDS if k in g}
    bb = {k: v for k, v in g["backbone_config"].items() if k not in ("out_indices", "stage_names", "_name_or_path")}
    bb["out_features"] = ["stage2", "stage3", "stage4"]
    kw["backbone_config"] = bb
    kw["text_config"] = dict(model_type="bert", vocab_size=8, hidden_size=8, num_hidden_layers=1,
                             num_attention_heads=1, intermediate_size=8, max_position_embeddings=8)
    kw["disable_custom_kernels"] = True
    kw["dropout"] = kw["attention_dropout"] = kw["activation_dropout"] = 0.0
    kw["layer_norm_eps"] = 1e-5  # 8.: OV's LayerNorms ignore the config's value
    return GroundingDinoConfig(**kw)


def swin4_config(g):
    bb = {k: v for k, v in g["backbone_config"].items() if k not in ("model_type", "out_indices", "stage_names",
                                                                     "_name_or_path")}
    bb["out_features"] = ["stage1", "stage2", "stage3", "stage4"]
    return SwinConfig(**bb)


# --------------------------------------------------------------------------------------------------------------
# the modules and forwards OV has and transformers lacks or does differently (written from the formulas above)


def inverse_sigmoid(x, eps=INV_SIGMOID_EPS):
    x = x.clamp(min=0, max=1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


class MLP(nn.Module):
    """layers.{i} Linears with ReLU between (patch2query)."""

    def __init__(self, n_in, hidden, n_out, num_layers):
        super().__init__()
        dims = [n_in] + [hidden] * (num_layers - 1) + [n_out]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i + 1 < len(self.layers):
                x = F.relu(x)
        return x


class NormConv2d(nn.Conv2d):
    """detectron2's Conv2d: conv, then the optional `norm` submodule, then the optional activation."""

    def __init__(self, *args, norm=None, activation=None, **kw):
        super().__init__(*args, **kw)
        self.norm = norm
        self.activation = activation

    def forward(self, x):
        x = super().forward(x)
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x


class TextQueryStub(nn.Module):
    """Stands in for HF's text_backbone: returns the patch2query features set before the call."""

    def __init__(self):
        super().__init__()
        self.features = None

    def forward(self, *args, **kwargs):
        if self.features is None:
            raise RuntimeError("TextQueryStub: no text features set (run through run_reference)")
        return _LastHidden(self.features)


class _LastHidden(dict):
    def __init__(self, t):
        super().__init__(last_hidden_state=t)
        self.last_hidden_state = t


class Swin4(SwinBackbone):
    """SwinBackbone with out_features stage1..4 at HF's conv_encoder.model: keeps stage1 aside, returns stage2..4."""

    def forward(self, pixel_values, *args, **kwargs):
        maps = super().forward(pixel_values, return_dict=True).feature_maps
        self.stage_maps = maps
        return BackboneOutput(feature_maps=maps[1:])


class OVTextEnhancerLayer(hfgd.GroundingDinoTextEnhancerLayer):
    """HF's layer with OV's nn.MultiheadAttention. `attention_masks` arrives as HF's encoder layer passes it
    (True = may attend, see 3.)."""

    def forward(self, hidden_states, attention_masks=None, position_embeddings=None):
        blocked = ~attention_masks.bool()
        # OV repeats the [B, T, T] mask head-major while nn.MultiheadAttention reads it batch-major: the pairing of
        # masks and batch items is wrong for B > 1 in OV; kept (equal for B = 1)
        blocked = blocked.repeat(self.num_heads, 1, 1)
        q = k = hidden_states if position_embeddings is None else hidden_states + position_embeddings
        attn, weights = self.self_attn(q, k, hidden_states, attn_mask=blocked, average_attn_weights=False)
        hidden_states = self.layer_norm_before(hidden_states + attn)
        ffn = self.fc2(self.activation(self.fc1(hidden_states)))
        return self.layer_norm_after(hidden_states + ffn), weights


class OVDecoderLayer(hfgd.GroundingDinoDecoderLayer):
    """HF's decoder layer with OV's nn.MultiheadAttention modules and the text key-padding mask (4.)."""

    def forward(self, hidden_states, position_embeddings=None, reference_points=None, spatial_shapes=None,
                level_start_index=None, vision_encoder_hidden_states=None, vision_encoder_attention_mask=None,
                text_encoder_hidden_states=None, text_encoder_attention_mask=None, self_attn_mask=None,
                output_attentions=False):
        q = hidden_states + position_embeddings
        attn, _ = self.self_attn(q, q, hidden_states, attn_mask=self_attn_mask)
        hidden_states = self.self_attn_layer_norm(hidden_states + attn)
        attn, _ = self.encoder_attn_text(hidden_states + position_embeddings, text_encoder_hidden_states,
                                         text_encoder_hidden_states, key_padding_mask=text_encoder_attention_mask)
        hidden_states = self.encoder_attn_text_layer_norm(hidden_states + attn)
        attn, _ = self.encoder_attn(hidden_states=hidden_states, attention_mask=vision_encoder_attention_mask,
                                    encoder_hidden_states=vision_encoder_hidden_states,
                                    encoder_attention_mask=vision_encoder_attention_mask,
                                    position_embeddings=position_embeddings, reference_points=reference_points,
                                    spatial_shapes=spatial_shapes, level_start_index=level_start_index)
        hidden_states = self.encoder_attn_layer_norm(hidden_states + attn)
        ffn = self.fc2(self.activation_fn(self.fc1(hidden_states)))
        return (self.final_layer_norm(hidden_states + ffn),)


def ov_text_masks(valid):
    """generate_masks_with_text_query_masks: valid [B, T] bool -> (self-attention mask [B, T, T] True = may attend,
    position ids [B, T])."""
    b, t = valid.shape
    mask = torch.eye(t, dtype=torch.bool, device=valid.device).unsqueeze(0).repeat(b, 1, 1)
    pos = torch.zeros(b, t, dtype=torch.long, device=valid.device)
    for i in range(b):
        n = int(valid[i].sum())
        mask[i, :n, :n] = True
        pos[i, :n] = torch.arange(n, device=valid.device)
    return mask, pos


@contextlib.contextmanager
def ov_patches():
    """While the reference runs: HF's text-mask generator -> OV's (2.), torch.special.logit -> OV's inverse_sigmoid
    (5.)."""
    saved_masks, saved_logit = hfgd.generate_masks_with_special_tokens_and_transfer_map, torch.special.logit

    def masks_from_ids(input_ids):
        return ov_text_masks(input_ids != 0)

    def logit(x, eps=None):
        assert eps == INV_SIGMOID_EPS, eps
        return inverse_sigmoid(x, eps)

    hfgd.generate_masks_with_special_tokens_and_transfer_map = masks_from_ids
    torch.special.logit = logit
    try:
        yield
    finally:
        hfgd.generate_masks_with_special_tokens_and_transfer_map = saved_masks
        torch.special.logit = saved_logit


# --------------------------------------------------------------------------------------------------------------
# the reference model


def new_reference(g):
    """An OVGroundingDinoForObjectDetection-shaped module tree (so state_dict() gives OV's names) built from HF's
    GroundingDinoForObjectDetection; weights as HF initialises them."""
    cfg = hf_config(g)
    ref = GroundingDinoForObjectDetection(cfg).eval()
    ref.gdino_config = copy.deepcopy(g)
    m = ref.model
    d = cfg.d_model
    # 1. no BERT
    del m.text_backbone, m.text_projection
    m.text_backbone = TextQueryStub()
    m.text_projection = nn.Identity()
    # 6. four Swin stages
    old = m.backbone.conv_encoder.model
    swin = Swin4(swin4_config(g)).eval()
    missing, unexpected = swin.load_state_dict(old.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("hidden_states_norms.stage1.") for k in missing), (missing, unexpected)
    m.backbone.conv_encoder.model = swin
    # 3. / 4. nn.MultiheadAttention
    for layer in m.encoder.layers:
        te = layer.text_enhancer_layer
        te.__class__ = OVTextEnhancerLayer
        te.self_attn = nn.MultiheadAttention(d, cfg.encoder_attention_heads // 2, batch_first=True)
    for layer in m.decoder.layers:
        layer.__class__ = OVDecoderLayer
        layer.self_attn = nn.MultiheadAttention(d, cfg.decoder_attention_heads, batch_first=True)
        layer.encoder_attn_text = nn.MultiheadAttention(d, cfg.decoder_attention_heads, batch_first=True)
    # 10. one head per layer when not shared
    if not cfg.decoder_bbox_embed_share:
        ref.bbox_embed = nn.ModuleList(copy.deepcopy(ref.bbox_embed[0]) for _ in range(cfg.decoder_layers))
        m.decoder.bbox_embed = ref.bbox_embed
    # 7. mask branch, in OV's module order and names
    c1 = swin.channels[0]
    num_fpn = max(cfg.num_feature_levels - 3, 1)
    m.mask_features = nn.Conv2d(d, g["mask_dim"], kernel_size=1)
    m.lateral_convs = nn.ModuleList(
        NormConv2d(c, d, kernel_size=1, bias=False, norm=nn.GroupNorm(32, d)) for c in swin.channels[:num_fpn])
    m.output_convs = nn.ModuleList(
        NormConv2d(d, d, kernel_size=3, padding=1, bias=False, norm=nn.GroupNorm(32, d), activation=F.relu)
        for _ in range(num_fpn))
    assert m.lateral_convs[0].in_channels == c1
    m.mask_embed = hfgd.GroundingDinoMLPPredictionHead(d, d, g["mask_dim"], 3)
    shared_mask_embed = hfgd.GroundingDinoMLPPredictionHead(d, d, g["mask_dim"], 3)
    ref.mask_embed = nn.ModuleList([shared_mask_embed] * cfg.decoder_layers)
    # 1. patch2query
    ref.patch2query = MLP(g["l_hidden_size"], d, d, 3)
    return ref


def randomize(ref, seed):
    """Wide random weights: every path matters."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    norms = set()
    for name, mod in ref.named_modules():
        if isinstance(mod, (nn.LayerNorm, nn.GroupNorm)):
            norms.add(name)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            owner = name.rsplit(".", 1)[0]
            if owner in norms:
                p.copy_((1 + 0.2 * randn(p.shape)) if name.endswith("weight") else 0.1 * randn(p.shape))
            elif name.endswith(("vision_param", "text_param")):
                p.copy_(0.5 * randn(p.shape))
            elif name.endswith(("level_embed", "query_position_embeddings.weight")):
                p.copy_(randn(p.shape))
            elif name.endswith("relative_position_bias_table"):
                p.copy_(0.5 * randn(p.shape))
            elif name.endswith("sampling_offsets.bias"):
                p.copy_(p + 0.5 * randn(p.shape))  # HF's grid init (1..n_points pixels around) plus noise
            elif name.endswith("bias"):
                p.copy_(0.1 * randn(p.shape))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else p.shape[0]
                p.copy_(randn(p.shape) / math.sqrt(fan_in))


def vllm_state_dict(ref):
    """OV's state_dict() names with "gdino." (aliases included, sharing storage)."""
    return {"gdino." + k: v for k, v in ref.state_dict().items()}


def aliases(sd):
    """name -> the first name (in state_dict order) whose tensor shares its storage, or None."""
    first, out = {}, {}
    for k, v in sd.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset(), tuple(v.shape), tuple(v.stride()))
        out[k] = first.get(key)
        first.setdefault(key, k)
    return out


def build_reference(gdino_config, state_dict):
    """(a) The reference for a gdino_config dict and a {name: tensor} state dict in the VisionLLM layout ("gdino."
    prefix optional). A missing alias (e.g. bbox_embed.3 when bbox_embed.0 is there) is filled from the module it
    shares and a missing Swin relative_position_index is computed; any other missing or unexpected key is an error."""
    ref = new_reference(gdino_config)
    sd = {(k[len("gdino."):] if k.startswith("gdino.") else k): v for k, v in state_dict.items()}
    own = ref.state_dict()
    al = aliases(own)
    full = {}
    for k in own:
        if k in sd:
            full[k] = sd[k]
        elif al[k] is not None and al[k] in sd:
            full[k] = sd[al[k]]
        else:
            # the first of a group may be absent while a later alias is present
            group = [a for a in own if a == k or al[a] == k]
            have = [a for a in group if a in sd]
            if have:
                full[k] = sd[have[0]]
            elif k.endswith("relative_position_index"):
                full[k] = own[k]  # a buffer fixed by window_size (make-tiny does not write it)
            else:
                raise KeyError(f"gdino checkpoint: missing '{k}'")
    extra = sorted(set(sd) - set(own))
    if extra:
        raise KeyError(f"gdino checkpoint: unexpected keys {extra[:10]}")
    ref.load_state_dict({k: v.to(own[k].dtype) for k, v in full.items()}, strict=True)
    return ref.eval()


def load_visionllm_gdino(model_dir):
    """(gdino_config dict, {"gdino.*": tensor}) of a VisionLLMv2 model directory (config.json + .bin or safetensors
    shards with or without an index, as make-tiny writes them)."""
    with open(os.path.join(model_dir, "config.json")) as f:
        g = json.load(f)["gdino_config"]
    files = []
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if os.path.exists(os.path.join(model_dir, index)):
            with open(os.path.join(model_dir, index)) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
            break
    if not files:
        files = [n for n in ("model.safetensors", "pytorch_model.bin") if os.path.exists(os.path.join(model_dir, n))]
    sd = {}
    for name in files:
        path = os.path.join(model_dir, name)
        if name.endswith(".safetensors"):
            from safetensors.torch import load_file

            part = load_file(path)
        else:
            part = torch.load(path, map_location="cpu", weights_only=True)
        sd.update({k: v for k, v in part.items() if k.startswith("gdino.")})
    return g, sd


@torch.no_grad()
def run_reference(ref, pixel_values, pixel_mask, text_query, text_query_mask, topk_check=None):
    """(b) OV's forward_test on (pixel_values [B,3,H,W], pixel_mask [B,H,W] bool True = valid, text_query
    [B,T,num_embs,l_hidden], text_query_mask [B,T] bool True = valid). Returns a dict of tensors:
      logits.{l} [B,Q,max_text_len] (-inf on padded text), boxes.{l} [B,Q,4] cxcywh, masks.{l} [B,Q,H/4,W/4]
      for every decoder layer l, and intermediates: backbone.stage{1..4}, text_features (patch2query output),
      valid_ratios, enc_vision, enc_text, mask_features, enc_class_max [B, sum HW] (the scores ranked by the two-stage
      selection), topk_index [B,Q], init_reference [B,Q,4], dec_hidden.{l} (decoder.layer_norm'ed), dec_reference.{l}.
    topk_check: None, "warn" or "raise" on ties / near-ties at the top-k selection."""
    m = ref.model
    dtype = next(ref.parameters()).dtype
    pixel_values = pixel_values.to(dtype)
    text_query = text_query.to(dtype)
    valid = text_query_mask.bool()
    text = ref.patch2query(text_query).mean(-2)
    m.text_backbone.features = text
    with ov_patches():
        out = m(pixel_values=pixel_values, input_ids=valid.long(), attention_mask=valid.long(),
                pixel_mask=pixel_mask, return_dict=True)
    m.text_backbone.features = None
    stages = m.backbone.conv_encoder.model.stage_maps
    res = {f"backbone.stage{i + 1}": s for i, s in enumerate(stages)}
    res["text_features"] = text
    # geometry of the encoder levels, as the model computed it
    shapes = []
    for s in stages[1:]:
        shapes.append(tuple(s.shape[-2:]))
    while len(shapes) < ref.config.num_feature_levels:
        ph, pw = shapes[-1]
        shapes.append(((ph - 1) // 2 + 1, (pw - 1) // 2 + 1))  # 3x3 stride 2 pad 1
    enc_v, enc_t = out.encoder_last_hidden_state_vision, out.encoder_last_hidden_state_text
    res["enc_vision"], res["enc_text"] = enc_v, enc_t
    # 7. mask branch
    b = enc_v.shape[0]
    sizes = [hh * ww for hh, ww in shapes]
    levels = [z.transpose(1, 2).reshape(b, -1, hh, ww) for z, (hh, ww) in zip(enc_v.split(sizes, 1), shapes)]
    outs = list(levels)
    for idx in range(len(m.lateral_convs)):
        lat = m.lateral_convs[idx](stages[idx])
        y = lat + F.interpolate(outs[0], size=lat.shape[-2:], mode="bilinear", align_corners=False)
        outs.insert(0, m.output_convs[idx](y))
    mask_features = m.mask_features(outs[0])
    res["mask_features"] = mask_features
    # two-stage selection, recomputed from the returned scores (the same topk on the same tensor)
    scores = out.enc_outputs_class.max(-1)[0]
    q = ref.config.num_queries
    top = torch.topk(scores, q, dim=1)
    res["enc_class_max"] = scores
    res["topk_index"] = top.indices
    res["init_reference"] = out.init_reference_points
    margin = _topk_margin(scores, q)
    if topk_check and margin["tied"]:
        msg = f"two-stage top-{q} selection has ties or near-ties: {margin}"
        if topk_check == "raise":
            raise RuntimeError(msg)
        print("warning:", msg, file=sys.stderr)
    res["_topk_margin"] = margin
    # 11. heads
    hs, refs = out.intermediate_hidden_states, out.intermediate_reference_points
    for lvl in range(hs.shape[1]):
        h_l = hs[:, lvl]
        reference = out.init_reference_points if lvl == 0 else refs[:, lvl - 1]
        res[f"logits.{lvl}"] = ref.class_embed[lvl](vision_hidden_state=h_l, text_hidden_state=enc_t,
                                                    text_token_mask=valid).float()
        res[f"boxes.{lvl}"] = (ref.bbox_embed[lvl](h_l) + inverse_sigmoid(reference)).sigmoid().float()
        res[f"masks.{lvl}"] = torch.einsum("bqc,bchw->bqhw", ref.mask_embed[lvl](h_l), mask_features).float()
        res[f"dec_hidden.{lvl}"] = h_l
        res[f"dec_reference.{lvl}"] = refs[:, lvl]
    res["valid_ratios"] = torch.stack([m.get_valid_ratio(
        F.interpolate(pixel_mask[None].float(), size=s).bool()[0]) for s in shapes], 1)
    return res


def _topk_margin(scores, k):
    """Smallest gap between neighbours among the k+1 best scores (relative to their spread), per batch item."""
    out = {"min_gap": math.inf, "tied": False}
    for row in scores.double():
        v = row.sort(descending=True).values[: k + 1]
        gaps = (v[:-1] - v[1:]).abs()
        scale = max(float(v.abs().max()), 1.0)
        g = float(gaps.min()) / scale
        out["min_gap"] = min(out["min_gap"], g)
        out["tied"] = out["tied"] or g < 1e-4
    return out


# --------------------------------------------------------------------------------------------------------------
# inputs


def detection_image(h, w, ph, pw):
    """A real photo resized (cv2 bilinear, as mmdet's Resize) to h x w, normalised as the detection pipeline
    (ImageNet mean/std, to RGB), zero padded to ph x pw; or a random image when the photo is absent."""
    mean = np.array([123.675, 116.28, 103.53], np.float32)
    std = np.array([58.395, 57.12, 57.375], np.float32)
    path = os.path.join(ROOT, "..", "shared", "data", "images", "cat_dog.jpeg")
    img = None
    try:
        import cv2

        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
        if bgr is not None:
            img = cv2.resize(bgr, (w, h), interpolation=cv2.INTER_LINEAR)[:, :, ::-1].astype(np.float32)
            src = "../shared/data/images/cat_dog.jpeg"
    except ImportError:
        pass
    if img is None:
        img = np.random.default_rng(0).integers(0, 256, (h, w, 3)).astype(np.float32)
        src = "random"
    norm = (img - mean) / std
    px = torch.zeros(1, 3, ph, pw)
    px[0, :, :h, :w] = torch.from_numpy(np.ascontiguousarray(norm.transpose(2, 0, 1)))
    return px, src


CASES = {
    "t3": dict(T=3, valid=3, seed=11, about="3 routing groups, all valid"),
    "t1": dict(T=1, valid=1, seed=12, about="1 routing group"),
    "t4pad": dict(T=4, valid=3, seed=13, about="4 text slots, the last padded (text masks everywhere)"),
}
IMAGE = dict(h=90, w=130, ph=96, pw=160)
WEIGHT_SEED = 5


def _diff(a, b):
    a, b = a.double(), b.double()
    fin = torch.isfinite(b)
    assert torch.equal(fin, torch.isfinite(a)), "fp32/fp64 disagree on which entries are finite"
    if not fin.any():
        return {"max_abs": 0.0, "rel_to_max": 0.0}
    d = float((a[fin] - b[fin]).abs().max())
    return {"max_abs": d, "rel_to_max": d / max(float(b[fin].abs().max()), 1e-30)}


def _check_query_pos():
    """9.: HF's decoder query_pos == OV's get_proposal_pos_embed, bit for bit."""
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(2, 7, 4, generator=gen)
    d = 64
    hf = hfgd.get_sine_pos_embed(p, num_pos_feats=d // 2)
    dim_t = torch.arange(d // 2, dtype=torch.float32)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / (d // 2))
    parts = []
    for i in (1, 0, 2, 3):
        x = (p[:, :, i] * 2 * math.pi)[:, :, None] / dim_t
        parts.append(torch.stack((x[:, :, 0::2].sin(), x[:, :, 1::2].cos()), dim=3).flatten(2))
    assert torch.equal(hf, torch.cat(parts, 2)), "decoder query_pos differs from OV's"


def full_layout():
    with open(os.path.join(ROOT, "configs", "visionllmv2-7b.config.json")) as f:
        g = json.load(f)["gdino_config"]
    from transformers.modeling_utils import no_init_weights

    with no_init_weights():  # shapes only (Swin cannot be built on the meta device)
        ref = new_reference(g)
    return {k: list(v.shape) for k, v in ref.state_dict().items()}


def save(path, tensors):
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous().clone() for k, v in tensors.items()}, path)
    os.chmod(path, 0o644)
    size = os.path.getsize(path)
    assert size < 2 * 1024 * 1024, f"{path}: {size} bytes, over 2 MB"
    return size


def save_sharded(folder, sd, n):
    """save_pretrained-style safetensors shards (names in state_dict order, split by size) and their index."""
    os.makedirs(folder, exist_ok=True)
    total = sum(v.numel() * v.element_size() for v in sd.values())
    shards, cur, acc = [[] for _ in range(n)], 0, 0
    for k, v in sd.items():
        if acc > (cur + 1) * total / n and cur + 1 < n:
            cur += 1
        shards[cur].append(k)
        acc += v.numel() * v.element_size()
    weight_map, sizes = {}, {}
    for i, keys in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        sizes["checkpoint/" + fname] = save(os.path.join(folder, fname), {k: sd[k] for k in keys})
        weight_map.update({k: fname for k in keys})
    with open(os.path.join(folder, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    return sizes


@torch.no_grad()
def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    _check_query_pos()
    g = tiny_gdino_config()
    ref = new_reference(g)
    randomize(ref, WEIGHT_SEED)
    sd = vllm_state_dict(ref)
    al = aliases(sd)
    # round trip through the VisionLLM layout: the golden runs the rebuilt model
    ref = build_reference(g, {k: v.clone() for k, v in sd.items()})
    with open(os.path.join(OUT, "config.json"), "w") as f:
        json.dump(g, f, indent=2)
    sizes = save_sharded(os.path.join(OUT, "checkpoint"), sd, 2)
    layout = {
        "keys": [[k, list(v.shape), str(v.dtype).replace("torch.", ""), al[k]] for k, v in sd.items()],
        "full": {"config": "configs/visionllmv2-7b.config.json gdino_config", "prefix": "gdino.",
                 "tensors": full_layout()},
    }
    with open(os.path.join(OUT, "layout.json"), "w") as f:
        json.dump(layout, f, indent=1)

    px, src = detection_image(**IMAGE)
    pmask = px[:, 0] != 0
    ref64 = copy.deepcopy(ref).double()
    meta = {"image": dict(IMAGE, source=src), "weight_seed": WEIGHT_SEED, "cases": {}}
    for name, case in CASES.items():
        gen = torch.Generator().manual_seed(case["seed"])
        tq = torch.randn(1, case["T"], g["num_embs"], g["l_hidden_size"], generator=gen)
        tmask = torch.zeros(1, case["T"], dtype=torch.bool)
        tmask[:, : case["valid"]] = True
        res = run_reference(ref, px, pmask, tq, tmask, topk_check="raise")
        margin = res.pop("_topk_margin")
        prev = torch.get_default_dtype()
        torch.set_default_dtype(torch.float64)
        try:
            r64 = run_reference(ref64, px.double(), pmask, tq.double(), tmask)
        finally:
            torch.set_default_dtype(prev)
        r64.pop("_topk_margin")
        assert torch.equal(res["topk_index"], r64["topk_index"]), "fp32 and fp64 select different queries"
        noise = {k: _diff(res[k], r64[k]) for k in res if k.split(".")[0] in ("logits", "boxes", "masks")}
        # the image and the backbone's maps (text-independent) go to image.safetensors once
        img = {"pixel_values": px, "pixel_mask": pmask}
        img.update({k: res.pop(k) for k in list(res) if k.startswith("backbone.")})
        if "image" not in sizes:
            sizes["image"] = save(os.path.join(OUT, "image.safetensors"), img)
            image_tensors = img
            meta["image"]["shapes"] = {k: list(v.shape) for k, v in img.items()}
        else:
            assert all(torch.equal(image_tensors[k], v) for k, v in img.items())
        tensors = {"text_query": tq, "text_query_mask": tmask}
        tensors.update(res)
        sizes[f"case_{name}"] = save(os.path.join(OUT, f"case_{name}.safetensors"), tensors)
        meta["cases"][name] = {
            "about": case["about"], "text_seed": case["seed"],
            "shapes": {k: list(v.shape) for k, v in tensors.items()},
            "fp32_vs_fp64": noise, "topk_margin": margin,
        }
        worst = max(v["rel_to_max"] for v in noise.values())
        print(f"{name}: fp32 vs fp64 worst rel {worst:.2e}, top-k min gap {margin['min_gap']:.2e}")
    meta["sizes"] = sizes
    meta["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(meta, f, indent=1)
    with open(os.path.join(OUT, "README.md"), "w") as f:
        f.write("Generated by tools/golden/gdino.py (transformers %s, torch %s); see its docstring.\n"
                % (transformers.__version__, torch.__version__.split("+")[0]))
    print(sizes)


if __name__ == "__main__":
    main()
