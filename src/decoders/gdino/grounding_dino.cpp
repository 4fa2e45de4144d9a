// OVGroundingDinoForObjectDetection.forward_test and OVGroundingDinoModel.forward (inference), see grounding_dino.h.
#include "decoders/gdino/grounding_dino.h"

#include <ATen/ATen.h>

#include <limits>
#include <optional>

#include "decoders/gdino/modules.h"
#include "decoders/gdino/swin.h"
#include "visionllm/error.h"

namespace visionllm::gdino {

namespace {

constexpr double k_inf = std::numeric_limits<double>::infinity();

// F.interpolate(pixel_mask[None].float(), size=(h, w)).to(torch.bool)[0]: nearest, the batch as channels
at::Tensor resize_mask(const at::Tensor & pixel_mask, int64_t h, int64_t w) {
    return at::upsample_nearest2d(pixel_mask.unsqueeze(0).to(at::kFloat), {h, w}).to(at::kBool)[0];
}

// OVGroundingDinoModel.get_valid_ratio: [B, H, W] bool -> [B, 2] (w, h) fp32
at::Tensor valid_ratio(const at::Tensor & mask) {
    const int64_t h = mask.size(1), w = mask.size(2);
    at::Tensor vh = mask.select(2, 0).sum(1).to(at::kFloat) / double(h);
    at::Tensor vw = mask.select(1, 0).sum(1).to(at::kFloat) / double(w);
    return at::stack({vw, vh}, -1);
}

ConvNorm bind_conv_norm(const WeightView & w, const std::string & conv, const std::string & norm, int64_t out,
                        int64_t in, int64_t k, int64_t stride, bool bias, bool relu, const llm::Loader & load) {
    ConvNorm c;
    c.weight = load(w, conv + ".weight", {out, in, k, k});
    if (bias) c.bias = load(w, conv + ".bias", {out});
    c.norm_weight = load(w, norm + ".weight", {out});
    c.norm_bias = load(w, norm + ".bias", {out});
    c.stride = stride;
    c.padding = k / 2;
    c.relu = relu;
    return c;
}

void check_config(const GroundingDinoConfig & c) {
    VLLM_CHECK(c.two_stage, "gdino_config.two_stage must be true (the reference's forward needs it)");
    VLLM_CHECK(c.norm == "GN", "gdino_config.norm '", c.norm, "' is not supported (GN)");
    VLLM_CHECK(c.d_model > 0 && c.d_model % 32 == 0, "gdino_config.d_model ", c.d_model,
               " must be a multiple of 32 (GroupNorm(32, d_model))");
    VLLM_CHECK(c.activation_function == "relu" || c.activation_function == "gelu", "gdino_config.activation_function '",
               c.activation_function, "' is not supported (relu, gelu)");
    VLLM_CHECK(c.position_embedding_type == "sine", "gdino_config.position_embedding_type '", c.position_embedding_type,
               "' is not supported (sine)");
    VLLM_CHECK(c.num_feature_levels >= 3, "gdino_config.num_feature_levels ", c.num_feature_levels,
               " is not supported (the transformer reads 3 backbone levels)");
    VLLM_CHECK(c.num_queries > 0 && c.max_text_len > 0, "gdino_config: num_queries and max_text_len must be positive");
}

}  // namespace

struct OVGroundingDinoForObjectDetection::Impl {
    GroundingDinoConfig c;
    c10::Device device;
    at::ScalarType dtype;
    SwinBackbone backbone;
    std::vector<int64_t> channels;
    int64_t num_fpn = 1;
    std::vector<ConvNorm> input_proj;
    at::Tensor level_embed, query_embed;
    Encoder encoder;
    Decoder decoder;
    Linear enc_output;
    LayerNorm enc_output_norm;
    MLPPredictionHead encoder_output_bbox_embed;
    ConvNorm mask_features;
    std::vector<ConvNorm> lateral_convs, output_convs;
    MLPPredictionHead mask_embed, patch2query;

    Impl(const GroundingDinoConfig & cfg, const WeightView & w, const llm::Loader & load)
        : c(cfg),
          device(load.device),
          dtype(load.dtype),
          backbone((check_config(cfg), cfg.backbone), w.view("model.backbone.conv_encoder.model."), load),
          channels(backbone.channels()),
          encoder(cfg, w.view("model.encoder."), load),
          decoder(cfg, w.view("model.decoder."), load) {
        const int64_t d = c.d_model, L = c.num_feature_levels;
        VLLM_CHECK(channels.size() == 4, "gdino: the backbone returns ", channels.size(),
                   " maps; VisionLLM v2's Grounding DINO needs 4 (out_features stage1..stage4)");
        const WeightView m = w.view("model.");
        // 1x1 conv + GN on the last three maps, then 3x3 stride-2 conv + GN levels (on the last map, then on the
        // previous level)
        for (int64_t l = 0; l < L; ++l) {
            const std::string p = "input_proj_vision." + std::to_string(l);
            if (l < 3)
                input_proj.push_back(bind_conv_norm(m, p + ".0", p + ".1", d, channels[size_t(l) + 1], 1, 1, true,
                                                    false, load));
            else
                input_proj.push_back(
                    bind_conv_norm(m, p + ".0", p + ".1", d, l == 3 ? channels.back() : d, 3, 2, true, false, load));
        }
        level_embed = load(m, "level_embed", {L, d});
        if (c.embedding_init_target) query_embed = load(m, "query_position_embeddings.weight", {c.num_queries, d});
        enc_output = bind_linear(m, "enc_output", d, d, load);
        enc_output_norm = bind_layer_norm(m, "enc_output_norm", d, load);
        encoder_output_bbox_embed = MLPPredictionHead(m.view("encoder_output_bbox_embed."), d, d, 4, 3, load);
        // mask branch (detectron2 Conv2d: no bias with a norm)
        num_fpn = std::max<int64_t>(L - 3, 1);
        for (int64_t i = 0; i < num_fpn; ++i) {
            const std::string lat = "lateral_convs." + std::to_string(i), out = "output_convs." + std::to_string(i);
            lateral_convs.push_back(bind_conv_norm(m, lat, lat + ".norm", d, channels[size_t(i)], 1, 1, false, false, load));
            output_convs.push_back(bind_conv_norm(m, out, out + ".norm", d, d, 3, 1, false, true, load));
        }
        mask_features.weight = load(m, "mask_features.weight", {c.mask_dim, d, 1, 1});
        mask_features.bias = load(m, "mask_features.bias", {c.mask_dim});
        // heads shared by every decoder layer (mask_embed.{i} are one module) and the text-query projection
        mask_embed = MLPPredictionHead(w.view("mask_embed.0."), d, d, c.mask_dim, 3, load);
        patch2query = MLPPredictionHead(w.view("patch2query."), c.l_hidden_size, d, d, 3, load);
    }

    GroundingDinoOutput run(const std::vector<at::Tensor> & maps, const at::Tensor & pixel_mask_in,
                            const at::Tensor & text_query_in, const at::Tensor & text_query_mask_in,
                            const ForwardOptions & opt) const;
};

OVGroundingDinoForObjectDetection::OVGroundingDinoForObjectDetection(const GroundingDinoConfig & c,
                                                                     const WeightView & w, const llm::Loader & load)
    : m_(std::make_unique<Impl>(c, w, load)) {}
OVGroundingDinoForObjectDetection::~OVGroundingDinoForObjectDetection() = default;
OVGroundingDinoForObjectDetection::OVGroundingDinoForObjectDetection(OVGroundingDinoForObjectDetection &&) noexcept =
    default;
OVGroundingDinoForObjectDetection & OVGroundingDinoForObjectDetection::operator=(
    OVGroundingDinoForObjectDetection &&) noexcept = default;

const GroundingDinoConfig & OVGroundingDinoForObjectDetection::config() const { return m_->c; }
c10::Device OVGroundingDinoForObjectDetection::device() const { return m_->device; }
at::ScalarType OVGroundingDinoForObjectDetection::dtype() const { return m_->dtype; }

namespace {

at::Tensor as_bool(const at::Tensor & t, const char * name) {
    VLLM_CHECK(t.scalar_type() == at::kBool || at::isIntegralType(t.scalar_type(), false), "gdino: ", name,
               " must be bool (true = valid), got ", t.scalar_type());
    return t.scalar_type() == at::kBool ? t : t.ne(0);
}

}  // namespace

std::vector<at::Tensor> OVGroundingDinoForObjectDetection::backbone(const at::Tensor & pixel_values) const {
    VLLM_CHECK(pixel_values.defined() && pixel_values.dim() == 4 && pixel_values.size(1) == 3 &&
                   pixel_values.size(0) > 0 && pixel_values.size(2) > 0 && pixel_values.size(3) > 0,
               "gdino: pixel_values must be [B, 3, H, W], got ",
               pixel_values.defined() ? pixel_values.sizes() : at::IntArrayRef{});
    VLLM_CHECK(at::isFloatingType(pixel_values.scalar_type()), "gdino: pixel_values must be floating point, got ",
               pixel_values.scalar_type());
    return m_->backbone.forward(pixel_values.to(m_->device, m_->dtype));
}

GroundingDinoOutput OVGroundingDinoForObjectDetection::forward(const at::Tensor & pixel_values,
                                                               const at::Tensor & pixel_mask,
                                                               const at::Tensor & text_query,
                                                               const at::Tensor & text_query_mask,
                                                               const ForwardOptions & opt) const {
    VLLM_CHECK(pixel_values.defined() && pixel_values.dim() == 4, "gdino: pixel_values must be [B, 3, H, W], got ",
               pixel_values.defined() ? pixel_values.sizes() : at::IntArrayRef{});
    VLLM_CHECK(pixel_mask.defined() && pixel_mask.dim() == 3 && pixel_mask.size(0) == pixel_values.size(0) &&
                   pixel_mask.size(1) == pixel_values.size(2) && pixel_mask.size(2) == pixel_values.size(3),
               "gdino: pixel_mask must be [B, H, W] = [", pixel_values.size(0), ", ", pixel_values.size(2), ", ",
               pixel_values.size(3), "] as pixel_values ", pixel_values.sizes(), ", got ",
               pixel_mask.defined() ? pixel_mask.sizes() : at::IntArrayRef{});
    std::vector<at::Tensor> maps = backbone(pixel_values);
    GroundingDinoOutput out = m_->run(maps, pixel_mask, text_query, text_query_mask, opt);
    if (opt.intermediates)
        for (size_t i = 0; i < maps.size(); ++i) out.intermediates["backbone.stage" + std::to_string(i + 1)] = maps[i];
    return out;
}

GroundingDinoOutput OVGroundingDinoForObjectDetection::forward_features(const std::vector<at::Tensor> & maps,
                                                                        const at::Tensor & pixel_mask,
                                                                        const at::Tensor & text_query,
                                                                        const at::Tensor & text_query_mask,
                                                                        const ForwardOptions & opt) const {
    return m_->run(maps, pixel_mask, text_query, text_query_mask, opt);
}

GroundingDinoOutput OVGroundingDinoForObjectDetection::Impl::run(const std::vector<at::Tensor> & maps_in,
                                                                 const at::Tensor & pixel_mask_in,
                                                                 const at::Tensor & text_query_in,
                                                                 const at::Tensor & text_query_mask_in,
                                                                 const ForwardOptions & opt) const {
    const int64_t d = c.d_model, Lv = c.num_feature_levels;
    // ---- arguments
    VLLM_CHECK(maps_in.size() == channels.size(), "gdino: ", maps_in.size(), " backbone maps given, the model reads ",
               channels.size(), " (stage1..stage4)");
    VLLM_CHECK(pixel_mask_in.defined() && pixel_mask_in.dim() == 3, "gdino: pixel_mask must be [B, H, W], got ",
               pixel_mask_in.defined() ? pixel_mask_in.sizes() : at::IntArrayRef{});
    const int64_t B = pixel_mask_in.size(0);
    VLLM_CHECK(B > 0 && pixel_mask_in.size(1) > 0 && pixel_mask_in.size(2) > 0, "gdino: pixel_mask ",
               pixel_mask_in.sizes(), " is empty");
    std::vector<at::Tensor> maps;
    for (size_t i = 0; i < maps_in.size(); ++i) {
        const at::Tensor & x = maps_in[i];
        VLLM_CHECK(x.defined() && x.dim() == 4 && x.size(0) == B && x.size(1) == channels[i] && x.size(2) > 0 &&
                       x.size(3) > 0,
                   "gdino: backbone map stage", i + 1, " must be [", B, ", ", channels[i], ", h, w] (the batch of "
                   "pixel_mask), got ", x.defined() ? x.sizes() : at::IntArrayRef{});
        maps.push_back(x.to(device, dtype));
    }
    VLLM_CHECK(text_query_in.defined() && text_query_in.dim() == 4, "gdino: text_query must be [B, T, num_embs, ",
               c.l_hidden_size, "], got ", text_query_in.defined() ? text_query_in.sizes() : at::IntArrayRef{});
    const int64_t T = text_query_in.size(1);
    VLLM_CHECK(text_query_in.size(3) == c.l_hidden_size, "gdino: text_query has hidden size ", text_query_in.size(3),
               ", patch2query reads l_hidden_size ", c.l_hidden_size, " (text_query ", text_query_in.sizes(), ")");
    VLLM_CHECK(text_query_in.size(0) == B, "gdino: text_query has batch ", text_query_in.size(0), ", pixel_mask ", B);
    VLLM_CHECK(T > 0, "gdino: text_query has no text groups (T = 0): at least one routing group is needed");
    VLLM_CHECK(T <= c.max_text_len, "gdino: text_query has ", T, " text groups, more than max_text_len ", c.max_text_len);
    VLLM_CHECK(text_query_in.size(2) > 0, "gdino: text_query has no [EMB] queries per group (num_embs = 0)");
    VLLM_CHECK(at::isFloatingType(text_query_in.scalar_type()), "gdino: text_query must be floating point, got ",
               text_query_in.scalar_type());
    VLLM_CHECK(text_query_mask_in.defined() && text_query_mask_in.dim() == 2 && text_query_mask_in.size(0) == B &&
                   text_query_mask_in.size(1) == T,
               "gdino: text_query_mask must be [B, T] = [", B, ", ", T, "], got ",
               text_query_mask_in.defined() ? text_query_mask_in.sizes() : at::IntArrayRef{});
    const at::Tensor pixel_mask = as_bool(pixel_mask_in, "pixel_mask").to(device);
    const at::Tensor text_valid = as_bool(text_query_mask_in, "text_query_mask").to(device);
    const at::Tensor counts = text_valid.sum(1).to(at::kCPU);
    int64_t max_valid = 0;
    for (int64_t b = 0; b < B; ++b) {
        const int64_t n = counts[b].item<int64_t>();
        VLLM_CHECK(n > 0, "gdino: text_query_mask has no valid group for batch item ", b);
        max_valid = std::max(max_valid, n);
    }
    GroundingDinoOutput out;
    out.num_text = max_valid;
    auto keep = [&](const std::string & name, const at::Tensor & t) {
        if (opt.intermediates) out.intermediates[name] = t;
    };
    const auto ft = at::TensorOptions().dtype(at::kFloat).device(device);

    // ---- text: patch2query per [EMB] query, mean over a group's queries
    at::Tensor text = patch2query.forward(text_query_in.to(device, dtype)).mean(-2);
    keep("text_features", text);
    // generate_masks_with_text_query_masks: the first n (= valid count) groups attend to each other, the others to
    // themselves; position ids 0..n-1 then 0
    at::Tensor ar = at::arange(T, at::TensorOptions().dtype(at::kLong).device(device));
    at::Tensor n_b = counts.to(device).view({B, 1});
    at::Tensor in_block = ar.view({1, T}).lt(n_b);                                             // [B, T]
    at::Tensor allowed = (in_block.unsqueeze(2) & in_block.unsqueeze(1)) | at::eye(T, pixel_mask.options()).unsqueeze(0);
    at::Tensor position_ids = at::where(in_block, ar.view({1, T}).expand({B, T}), at::zeros_like(ar).view({1, T}));
    at::Tensor text_pos = text_position_embedding(position_ids, d).to(dtype);
    // the text enhancer repeats the [B, T, T] mask head-major (mask.repeat(heads, 1, 1)) while
    // nn.MultiheadAttention reads it batch-major: entry b * heads + h gets batch item (b * heads + h) % B (the
    // reference's pairing, the same for B = 1)
    const int64_t th = encoder.text_heads();
    at::Tensor pick = at::arange(B * th, at::TensorOptions().dtype(at::kLong).device(device)).remainder(B);
    at::Tensor text_allowed = allowed.index_select(0, pick);

    // ---- vision levels: input projections, masks, sine position embeddings + level_embed
    std::vector<at::Tensor> sources, masks;
    for (int64_t l = 0; l < Lv; ++l) {
        at::Tensor src = l < 3 ? input_proj[size_t(l)].forward(maps[size_t(l) + 1])
                               : input_proj[size_t(l)].forward(l == 3 ? maps.back() : sources.back());
        masks.push_back(resize_mask(pixel_mask, src.size(2), src.size(3)));
        sources.push_back(src);
    }
    Levels lv;
    std::vector<at::Tensor> flat, pos, valid, ratios;
    std::vector<int64_t> shapes;
    for (int64_t l = 0; l < Lv; ++l) {
        const at::Tensor & src = sources[size_t(l)];
        const int64_t h = src.size(2), w = src.size(3);
        lv.heights.push_back(h);
        lv.widths.push_back(w);
        lv.starts.push_back(lv.total);
        lv.total += h * w;
        shapes.push_back(h);
        shapes.push_back(w);
        flat.push_back(src.flatten(2).transpose(1, 2));
        pos.push_back(sine_position_embedding(masks[size_t(l)], d, c.positional_embedding_temperature).to(dtype) +
                      level_embed[l].view({1, 1, d}));
        valid.push_back(masks[size_t(l)].flatten(1));
        ratios.push_back(valid_ratio(masks[size_t(l)]));
    }
    lv.spatial_shapes = at::tensor(shapes, at::kLong).view({Lv, 2}).to(device);
    lv.level_start_index = at::tensor(lv.starts, at::kLong).to(device);
    at::Tensor vision = at::cat(flat, 1), vision_pos = at::cat(pos, 1), vision_valid = at::cat(valid, 1);
    const at::Tensor valid_ratios = at::stack(ratios, 1);  // [B, L, 2]
    flat.clear();
    pos.clear();
    keep("valid_ratios", valid_ratios);

    // ---- encoder
    encoder.forward(vision, text, vision_pos, vision_valid, lv, valid_ratios, text_valid, text_allowed, text_pos);
    vision_pos.reset();
    keep("enc_vision", vision);
    keep("enc_text", text);

    // ---- mask features: the encoder's first level upsampled onto the stride-4 map (lateral 1x1 conv + GN), 3x3
    // conv + GN + ReLU, then mask_features (1x1 conv)
    at::Tensor mask_feats;
    if (opt.masks) {
        std::vector<at::Tensor> levels_out;
        for (int64_t l = 0; l < Lv; ++l)
            levels_out.push_back(vision.narrow(1, lv.starts[size_t(l)], lv.heights[size_t(l)] * lv.widths[size_t(l)])
                                     .transpose(1, 2)
                                     .reshape({B, d, lv.heights[size_t(l)], lv.widths[size_t(l)]}));
        for (int64_t i = 0; i < num_fpn; ++i) {
            at::Tensor cur = lateral_convs[size_t(i)].forward(maps[size_t(i)]);
            at::Tensor up = at::upsample_bilinear2d(levels_out.front().to(at::kFloat), {cur.size(2), cur.size(3)}, false);
            levels_out.insert(levels_out.begin(), output_convs[size_t(i)].forward(cur.add_(up.to(cur.scalar_type()))));
        }
        mask_feats = at::conv2d(levels_out.front(), mask_features.weight, mask_features.bias);
        keep("mask_features", mask_feats);
    }

    // ---- two-stage query selection (gen_encoder_output_proposals, then the top num_queries by max text logit)
    std::vector<at::Tensor> props;
    for (int64_t l = 0; l < Lv; ++l) {
        const at::Tensor & mk = masks[size_t(l)];
        const int64_t h = lv.heights[size_t(l)], w = lv.widths[size_t(l)];
        at::Tensor vh = mk.select(2, 0).sum(1), vw = mk.select(1, 0).sum(1);  // int64 [B]
        auto grid = at::meshgrid({at::linspace(0, double(h - 1), h, ft), at::linspace(0, double(w - 1), w, ft)}, "ij");
        at::Tensor g = at::cat({grid[1].unsqueeze(-1), grid[0].unsqueeze(-1)}, -1);  // [h, w, 2] (x, y)
        at::Tensor scale = at::cat({vw.unsqueeze(-1), vh.unsqueeze(-1)}, 1).view({B, 1, 1, 2});
        g = (g.unsqueeze(0).expand({B, h, w, 2}) + 0.5) / scale;
        at::Tensor wh = at::ones_like(g) * 0.05 * std::pow(2.0, double(l));
        props.push_back(at::cat({g, wh}, -1).view({B, h * w, 4}));
    }
    at::Tensor proposals = at::cat(props, 1);  // [B, S, 4]
    props.clear();
    const at::Tensor prop_ok = ((proposals > 0.01) & (proposals < 0.99)).all(-1, true);  // [B, S, 1]
    proposals = at::log(proposals / (1 - proposals));
    const at::Tensor padding = vision_valid.logical_not().unsqueeze(-1);
    proposals.masked_fill_(padding, k_inf).masked_fill_(prop_ok.logical_not(), k_inf);
    at::Tensor object_query = vision.masked_fill(padding, 0).masked_fill_(prop_ok.logical_not(), 0);
    object_query = enc_output_norm.forward(enc_output.forward(object_query));
    // enc_outputs_class.max(-1): the padded text and the padding to max_text_len are -inf
    at::Tensor enc_logits = at::matmul(object_query, text.transpose(1, 2)).to(at::kFloat);
    enc_logits.masked_fill_(text_valid.logical_not().unsqueeze(1), -k_inf);
    const at::Tensor enc_class_max = std::get<0>(enc_logits.max(-1));  // [B, S]
    enc_logits.reset();
    const int64_t Q = c.num_queries;
    VLLM_CHECK(Q <= lv.total, "gdino: the image gives ", lv.total, " encoder positions, fewer than num_queries ", Q,
               " (pixel_values too small)");
    // torch.topk's order (ATen's CPU topk) whatever the device
    at::Tensor topk;
    if (opt.selection.defined()) {
        VLLM_CHECK(opt.selection.dim() == 2 && opt.selection.size(0) == B && opt.selection.size(1) == Q &&
                       opt.selection.scalar_type() == at::kLong,
                   "gdino: ForwardOptions.selection must be int64 [", B, ", ", Q, "], got ", opt.selection.sizes());
        VLLM_CHECK(opt.selection.min().item<int64_t>() >= 0 && opt.selection.max().item<int64_t>() < lv.total,
                   "gdino: ForwardOptions.selection indexes outside the ", lv.total, " encoder positions");
        topk = opt.selection.to(device);
    } else {
        topk = std::get<1>(at::topk(enc_class_max.to(at::kCPU), Q, 1)).to(device);  // [B, Q]
    }
    keep("enc_class_max", enc_class_max);
    keep("topk_index", topk);
    const at::Tensor sel = topk.unsqueeze(-1);
    at::Tensor top_query = object_query.gather(1, sel.expand({B, Q, d}));
    at::Tensor coords = encoder_output_bbox_embed.forward(top_query).to(at::kFloat);
    coords.add_(proposals.gather(1, sel.expand({B, Q, 4})));
    const at::Tensor init_reference = coords.sigmoid();
    keep("init_reference", init_reference);
    object_query.reset();
    proposals.reset();
    at::Tensor target = c.embedding_init_target ? query_embed.unsqueeze(0).expand({B, Q, d}).contiguous() : top_query;

    // ---- decoder
    DecoderOutput dec = decoder.forward(target, init_reference, vision, vision_valid, lv, valid_ratios, text, text_valid);
    const int64_t nl = int64_t(dec.hidden.size());
    for (int64_t l = 0; l < nl; ++l) {
        keep("dec_hidden." + std::to_string(l), dec.hidden[size_t(l)]);
        keep("dec_reference." + std::to_string(l), dec.references[size_t(l)]);
    }

    // ---- heads
    for (int64_t l = opt.all_layers ? 0 : nl - 1; l < nl; ++l) {
        const at::Tensor & h = dec.hidden[size_t(l)];
        // contrastive class head: h . text, -inf on padded text and up to max_text_len
        at::Tensor dots = at::matmul(h, text.transpose(1, 2)).to(at::kFloat);
        dots.masked_fill_(text_valid.logical_not().unsqueeze(1), -k_inf);
        at::Tensor logits = at::full({B, Q, c.max_text_len}, -k_inf, ft);
        logits.narrow(-1, 0, T).copy_(dots);
        const at::Tensor & ref = l == 0 ? init_reference : dec.references[size_t(l) - 1];
        at::Tensor boxes = decoder.bbox_embed(l).forward(h).to(at::kFloat);
        boxes = boxes.add_(inverse_sigmoid(ref)).sigmoid_();
        out.logits.push_back(logits);
        out.boxes.push_back(boxes);
        out.layers.push_back(l);
        if (opt.masks) {
            at::Tensor me = mask_embed.forward(h);
            at::Tensor mk = at::bmm(me, mask_feats.flatten(2)).view({B, Q, mask_feats.size(2), mask_feats.size(3)});
            out.masks.push_back(mk.to(at::kFloat));
        }
    }
    return out;
}

}  // namespace visionllm::gdino
