// Building blocks and attention modules of the Grounding DINO transformer (modules.h).
#include "decoders/gdino/modules.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::gdino {

namespace {

constexpr double k_two_pi = 2 * M_PI;
constexpr double k_inf = std::numeric_limits<double>::infinity();

// dim_t of the sine embeddings: temperature ** (2 * floor(i / 2) / n), i = 0..n-1, fp32 as the reference computes it
at::Tensor sine_dim_t(int64_t n, double temperature, c10::Device device) {
    at::Tensor i = at::arange(n, at::TensorOptions().dtype(at::kFloat).device(device));
    return at::pow(temperature, 2 * at::div(i, 2, "floor") / double(n));
}

// x [..., n] (x / dim_t already) -> sin on even, cos on odd channels (stack((x[..., 0::2].sin(), x[..., 1::2].cos()),
// -1).flatten(-2))
at::Tensor sin_cos_interleave(const at::Tensor & x) {
    const int64_t n = x.size(-1);
    at::Tensor s = x.slice(-1, 0, n, 2).sin(), c = x.slice(-1, 1, n, 2).cos();
    return at::stack({s, c}, -1).flatten(-2);
}

}  // namespace

// ---------------------------------------------------------------- building blocks

at::Tensor Linear::forward(const at::Tensor & x) const { return kernels::linear(x, weight, bias); }

at::Tensor Linear::forward_relu(const at::Tensor & x) const {
    at::Tensor y = kernels::linear(x, weight, bias);
    return y.relu_();
}

at::Tensor Linear::forward_act(const at::Tensor & x, bool gelu) const {
    if (!gelu) return forward_relu(x);
    at::Tensor y = kernels::linear(x, weight);
    kernels::bias_act_(y, bias, kernels::Activation::Gelu);
    return y;
}

Linear bind_linear(const WeightView & w, const std::string & name, int64_t out, int64_t in, const llm::Loader & load,
                   bool bias) {
    Linear l;
    l.weight = load(w, name + ".weight", {out, in});
    if (bias) l.bias = load(w, name + ".bias", {out});
    return l;
}

at::Tensor LayerNorm::forward(const at::Tensor & x) const { return kernels::layer_norm(x, weight, bias, eps); }

LayerNorm bind_layer_norm(const WeightView & w, const std::string & name, int64_t n, const llm::Loader & load) {
    return {load(w, name + ".weight", {n}), load(w, name + ".bias", {n}), 1e-5};
}

MLPPredictionHead::MLPPredictionHead(const WeightView & w, int64_t in, int64_t hidden, int64_t out, int64_t num_layers,
                                     const llm::Loader & load) {
    for (int64_t i = 0; i < num_layers; ++i) {
        const int64_t a = i == 0 ? in : hidden, b = i + 1 == num_layers ? out : hidden;
        layers_.push_back(bind_linear(w, "layers." + std::to_string(i), b, a, load));
    }
}

at::Tensor MLPPredictionHead::forward(const at::Tensor & x) const {
    at::Tensor y = x;
    for (size_t i = 0; i < layers_.size(); ++i)
        y = i + 1 < layers_.size() ? layers_[i].forward_relu(y) : layers_[i].forward(y);
    return y;
}

at::Tensor ConvNorm::forward(const at::Tensor & x) const {
    at::Tensor y = at::conv2d(x, weight, bias, stride, padding);
    if (norm_weight.defined()) y = at::group_norm(y, 32, norm_weight, norm_bias, 1e-5);
    if (relu) y.relu_();
    return y;
}

at::Tensor sine_position_embedding(const at::Tensor & mask, int64_t d, double temperature) {
    // GroundingDinoSinePositionEmbedding(embedding_dim = d / 2, temperature, normalize=True, scale = 2 pi)
    const int64_t n = d / 2;
    const double eps = 1e-6;
    at::Tensor y = mask.cumsum(1, at::kFloat), x = mask.cumsum(2, at::kFloat);
    y = y / (y.slice(1, y.size(1) - 1, y.size(1)) + eps) * k_two_pi;
    x = x / (x.slice(2, x.size(2) - 1, x.size(2)) + eps) * k_two_pi;
    at::Tensor dim_t = sine_dim_t(n, temperature, mask.device());
    at::Tensor pos_y = sin_cos_interleave(y.unsqueeze(-1) / dim_t), pos_x = sin_cos_interleave(x.unsqueeze(-1) / dim_t);
    // cat((pos_y, pos_x), channels) then flatten(2).transpose(1, 2): [B, H*W, d]
    return at::cat({pos_y, pos_x}, -1).flatten(1, 2);
}

at::Tensor text_position_embedding(const at::Tensor & position_ids, int64_t num_pos_feats) {
    at::Tensor dim_t = sine_dim_t(num_pos_feats, 10000, position_ids.device());
    at::Tensor x = position_ids.unsqueeze(-1).to(at::kFloat) * k_two_pi / dim_t;
    return sin_cos_interleave(x);
}

at::Tensor proposal_position_embedding(const at::Tensor & proposals, int64_t d) {
    const int64_t n = d / 2;
    at::Tensor dim_t = sine_dim_t(n, 10000, proposals.device());
    std::vector<at::Tensor> parts;
    for (int64_t c : {1, 0, 2, 3}) {  // y, x, w, h
        at::Tensor e = proposals.select(-1, c) * k_two_pi;
        parts.push_back(sin_cos_interleave(e.unsqueeze(-1) / dim_t));
    }
    return at::cat(parts, -1);
}

at::Tensor inverse_sigmoid(const at::Tensor & x) {
    const double eps = 1e-5;
    at::Tensor c = x.clamp(0, 1);
    return at::log(c.clamp_min(eps) / (1 - c).clamp_min(eps));
}

// ---------------------------------------------------------------- nn.MultiheadAttention

MultiheadAttention::MultiheadAttention(const WeightView & w, int64_t d, int64_t heads, const llm::Loader & load)
    : d_(d), heads_(heads) {
    VLLM_CHECK(heads > 0 && d % heads == 0, w.prefix(), ": d_model ", d, " is not divisible by ", heads, " heads");
    at::Tensor in_w = load(w, "in_proj_weight", {3 * d, d}), in_b = load(w, "in_proj_bias", {3 * d});
    auto rows = [&](int64_t from, int64_t n) { return Linear{in_w.narrow(0, from, n), in_b.narrow(0, from, n)}; };
    qk_ = rows(0, 2 * d);
    q_ = rows(0, d);
    kv_ = rows(d, 2 * d);
    v_ = rows(2 * d, d);
    out_proj_ = bind_linear(w, "out_proj", d, d, load);
}

namespace {

// [B, T, n*D] slice (any row stride) -> [B, H, T, D] strided view
at::Tensor heads_view(const at::Tensor & x, int64_t H) {
    const int64_t B = x.size(0), T = x.size(1), D = x.size(2) / H;
    return x.view({B, T, H, D}).transpose(1, 2);
}

// [B, H, T, D] -> [B, T, H*D]
at::Tensor merge_heads(const at::Tensor & o) {
    return o.transpose(1, 2).reshape({o.size(0), o.size(2), o.size(1) * o.size(3)});
}

}  // namespace

at::Tensor MultiheadAttention::self_attention(const at::Tensor & x, const at::Tensor & pos) const {
    const int64_t D = d_ / heads_;
    at::Tensor qk = qk_.forward(x + pos), v = v_.forward(x);
    at::Tensor o = kernels::attention(heads_view(qk.narrow(-1, 0, d_), heads_), heads_view(qk.narrow(-1, d_, d_), heads_),
                                      heads_view(v, heads_), false, 1.0 / std::sqrt(double(D)));
    return out_proj_.forward(merge_heads(o));
}

at::Tensor MultiheadAttention::cross_attention(const at::Tensor & query, const at::Tensor & memory,
                                               const at::Tensor & key_valid) const {
    const int64_t B = query.size(0), D = d_ / heads_;
    const double scale = 1.0 / std::sqrt(double(D));
    at::Tensor q = q_.forward(query), kv = kv_.forward(memory);
    at::Tensor valid_cpu = key_valid.to(at::kCPU);
    std::vector<at::Tensor> outs;
    for (int64_t b = 0; b < B; ++b) {
        // the key_padding_mask's -inf positions get zero weight: attend over the valid keys alone
        at::Tensor kvb = kv.narrow(0, b, 1);
        at::Tensor vb = valid_cpu[b];
        if (!vb.all().item<bool>()) {
            at::Tensor idx = vb.nonzero().view({-1}).to(kv.device());
            kvb = kvb.index_select(1, idx);
        }
        outs.push_back(kernels::attention(heads_view(q.narrow(0, b, 1), heads_), heads_view(kvb.narrow(-1, 0, d_), heads_),
                                          heads_view(kvb.narrow(-1, d_, d_), heads_), false, scale));
    }
    at::Tensor o = B == 1 ? outs[0] : at::cat(outs, 0);
    return out_proj_.forward(merge_heads(o));
}

at::Tensor MultiheadAttention::masked_self_attention(const at::Tensor & x, const at::Tensor & pos,
                                                     const at::Tensor & allowed) const {
    const int64_t B = x.size(0), T = x.size(1), D = d_ / heads_;
    at::Tensor qk = qk_.forward(x + pos), v = v_.forward(x);
    at::Tensor q = heads_view(qk.narrow(-1, 0, d_), heads_), k = heads_view(qk.narrow(-1, d_, d_), heads_);
    at::Tensor scores = at::matmul(q, k.transpose(-1, -2)).to(at::kFloat).mul_(1.0 / std::sqrt(double(D)));
    scores.masked_fill_(allowed.view({B, heads_, T, T}).logical_not(), -k_inf);
    at::Tensor p = at::softmax(scores, -1).to(v.scalar_type());
    return out_proj_.forward(merge_heads(at::matmul(p, heads_view(v, heads_))));
}

// ---------------------------------------------------------------- multi-scale deformable attention

MultiscaleDeformableAttention::MultiscaleDeformableAttention(const WeightView & w, int64_t d, int64_t heads,
                                                             int64_t levels, int64_t points, const llm::Loader & load)
    : d_(d), heads_(heads), levels_(levels), points_(points) {
    VLLM_CHECK(heads > 0 && d % heads == 0, w.prefix(), ": d_model ", d, " is not divisible by ", heads, " heads");
    const int64_t n = heads * levels * points;
    Linear off = bind_linear(w, "sampling_offsets", 2 * n, d, load), att = bind_linear(w, "attention_weights", n, d, load);
    offsets_weights_ = Linear{at::cat({off.weight, att.weight}, 0), at::cat({off.bias, att.bias}, 0)};
    value_proj_ = bind_linear(w, "value_proj", d, d, load);
    output_proj_ = bind_linear(w, "output_proj", d, d, load);
}

at::Tensor MultiscaleDeformableAttention::project_value(const at::Tensor & memory, const at::Tensor & valid) const {
    at::Tensor v = value_proj_.forward(memory);
    v.masked_fill_(valid.logical_not().unsqueeze(-1), 0);
    return v.view({memory.size(0), memory.size(1), heads_, d_ / heads_});
}

at::Tensor MultiscaleDeformableAttention::forward(const at::Tensor & query, const at::Tensor & value,
                                                  const at::Tensor & reference, const Levels & lv) const {
    const int64_t B = query.size(0), Q = query.size(1), M = heads_, L = levels_, P = points_, n = M * L * P;
    VLLM_CHECK(int64_t(lv.heights.size()) == L, "deformable attention: ", lv.heights.size(),
               " feature levels for a module built for ", L);
    at::Tensor ow = offsets_weights_.forward(query);
    at::Tensor off = ow.narrow(-1, 0, 2 * n).view({B, Q, M, L, P, 2});
    at::Tensor weights = at::softmax(ow.narrow(-1, 2 * n, n).reshape({B, Q, M, L * P}), -1, at::kFloat)
                             .view({B, Q, M, L, P});
    at::Tensor loc;
    if (reference.size(-1) == 2) {
        // reference + offsets / (W_l, H_l)
        std::vector<float> wh;
        for (int64_t l = 0; l < L; ++l) {
            wh.push_back(float(lv.widths[size_t(l)]));
            wh.push_back(float(lv.heights[size_t(l)]));
        }
        at::Tensor norm = at::tensor(wh, at::kFloat).to(query.device()).view({1, 1, 1, L, 1, 2});
        loc = at::div(off.to(at::kFloat), norm);
        loc.add_(reference.view({B, Q, 1, L, 1, 2}));
    } else {
        // reference_xy + offsets / n_points * reference_wh * 0.5
        loc = at::div(off.to(at::kFloat), double(P));
        loc.mul_(reference.narrow(-1, 2, 2).view({B, Q, 1, L, 1, 2})).mul_(0.5);
        loc.add_(reference.narrow(-1, 0, 2).view({B, Q, 1, L, 1, 2}));
    }
    at::Tensor out = kernels::ms_deform_attn(value, lv.spatial_shapes, lv.level_start_index, loc, weights);
    return output_proj_.forward(out);
}

// ---------------------------------------------------------------- BiMultiHeadAttention

BiMultiHeadAttention::BiMultiHeadAttention(const GroundingDinoConfig & c, const WeightView & w,
                                           const llm::Loader & load)
    : d_(c.d_model), embed_(c.encoder_ffn_dim / 2), heads_(c.encoder_attention_heads / 2) {
    VLLM_CHECK(heads_ > 0 && embed_ % heads_ == 0, w.prefix(), ": encoder_ffn_dim / 2 = ", embed_,
               " is not divisible by encoder_attention_heads / 2 = ", heads_);
    head_dim_ = embed_ / heads_;
    scale_ = std::pow(double(head_dim_), -0.5);
    vision_proj_ = bind_linear(w, "vision_proj", embed_, d_, load);
    values_vision_proj_ = bind_linear(w, "values_vision_proj", embed_, d_, load);
    out_vision_proj_ = bind_linear(w, "out_vision_proj", d_, embed_, load);
    out_text_proj_ = bind_linear(w, "out_text_proj", d_, embed_, load);
    const Linear text_proj = bind_linear(w, "text_proj", embed_, d_, load),
                 values_text_proj = bind_linear(w, "values_text_proj", embed_, d_, load);
    text_kv_ = Linear{at::cat({text_proj.weight, values_text_proj.weight}, 0),
                      at::cat({text_proj.bias, values_text_proj.bias}, 0)};
    // per-head views the folded products read: W_q [H, hd, d], W_out_vision^T per head [H, hd, d],
    // W_values_vision^T per head [H, d, hd]
    const int64_t H = heads_, hd = head_dim_;
    vision_proj_.weight = vision_proj_.weight.view({H, hd, d_});
    vision_proj_.bias = vision_proj_.bias.view({H, hd, 1});
    out_vision_proj_.weight = out_vision_proj_.weight.view({d_, H, hd}).permute({1, 2, 0}).contiguous();
    values_vision_proj_.weight = values_vision_proj_.weight.view({H, hd, d_}).transpose(1, 2).contiguous();
}

std::pair<at::Tensor, at::Tensor> BiMultiHeadAttention::forward(const at::Tensor & vision, const at::Tensor & text,
                                                                const at::Tensor & vision_valid,
                                                                const at::Tensor & text_valid) const {
    const int64_t B = vision.size(0), S = vision.size(1), T = text.size(1), H = heads_, hd = head_dim_;
    const at::ScalarType dt = vision.scalar_type();
    at::Tensor kv = text_kv_.forward(text);                                        // [B, T, 2E]
    at::Tensor k = kv.narrow(-1, 0, embed_).view({B, T, H, hd}).transpose(1, 2);  // [B, H, T, hd]
    at::Tensor vt = kv.narrow(-1, embed_, embed_).view({B, T, H, hd}).transpose(1, 2);
    // logits[b, s, h*T + t] = scale * (vision_proj(v)[b, s, h] . k[b, h, t])
    //                       = v[b, s] . (scale * W_q,h^T k[b, h, t]) + scale * b_q,h . k[b, h, t]
    at::Tensor a = at::matmul(k, vision_proj_.weight).mul_(scale_).view({B, H * T, d_});    // [B, H*T, d]
    at::Tensor c = at::matmul(k, vision_proj_.bias).mul_(scale_).view({B, 1, H * T});       // [B, 1, H*T]
    at::Tensor logits = at::baddbmm(c, vision, a.transpose(1, 2)).to(at::kFloat);            // [B, S, H*T]
    // stabilisation: the global max (over everything, the batch included), clamp to +-50000
    logits.sub_(logits.max()).clamp_(-50000, 50000);
    // text side, on a [B, H*T, S] copy (reductions over the last dim): per (b, h, t) the row max over s, clamp,
    // padded vision -> -inf, softmax over s
    at::Tensor tl = logits.transpose(1, 2).contiguous();
    tl.sub_(std::get<0>(tl.max(-1, true))).clamp_(-50000, 50000);
    tl.masked_fill_(vision_valid.logical_not().unsqueeze(1), -k_inf);
    at::Tensor q_text = at::softmax(tl, -1).to(dt);  // [B, H*T, S]
    tl.reset();
    // vision side: padded text -> -inf, softmax over t
    logits.view({B, S, H, T}).masked_fill_(text_valid.logical_not().view({B, 1, 1, T}), -k_inf);
    at::Tensor p_vision = at::softmax(logits.view({B, S, H, T}), -1).to(dt).view({B, S, H * T});
    logits.reset();
    // vision output: sum_h P_h (V_t,h W_out,h^T) + b_out
    at::Tensor u = at::matmul(vt, out_vision_proj_.weight).view({B, H * T, d_});  // [B, H*T, d]
    at::Tensor delta_v = at::matmul(p_vision, u).add_(out_vision_proj_.bias);
    // text output: the softmax rows sum to one, so sum_s q (W v_s + b) = W (sum_s q v_s) + b
    at::Tensor r = at::matmul(q_text, vision).view({B, H, T, d_});                                // [B, H, T, d]
    at::Tensor tv = at::matmul(r, values_vision_proj_.weight);                                     // [B, H, T, hd]
    tv = tv.transpose(1, 2).reshape({B, T, embed_}).add_(values_vision_proj_.bias);
    at::Tensor delta_t = out_text_proj_.forward(tv);
    return {delta_v, delta_t};
}

}  // namespace visionllm::gdino
