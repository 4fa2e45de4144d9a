#include "decoders/gdino/swin.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "kernels/ops.h"
#include "visionllm/error.h"

namespace visionllm::gdino {

namespace {

constexpr double kTorchLayerNormEps = 1e-5;  // nn.LayerNorm's default (embeddings, merging, hidden_states_norms)
constexpr size_t kMaxCachedGrids = 16;       // window layouts kept per stage (one per input size seen)

std::string stage_prefix(int64_t s) { return "encoder.layers." + std::to_string(s) + "."; }
std::string block_prefix(int64_t s, int64_t b) { return stage_prefix(s) + "blocks." + std::to_string(b) + "."; }

int64_t stage_dim(const SwinConfig & c, int64_t s) { return c.embed_dim << s; }
int64_t mlp_dim(const SwinConfig & c, int64_t dim) { return int64_t(c.mlp_ratio * double(dim)); }  // int() in Python

SwinLinear bind_linear(const WeightView & w, const std::string & name, int64_t out, int64_t in, bool bias,
                       const llm::Loader & load) {
    SwinLinear l;
    l.weight = load(w, name + ".weight", {out, in});
    if (bias) l.bias = load(w, name + ".bias", {out});
    return l;
}

SwinLayerNorm bind_norm(const WeightView & w, const std::string & name, int64_t n, double eps,
                        const llm::Loader & load) {
    return {load(w, name + ".weight", {n}), load(w, name + ".bias", {n}), eps};
}

// SwinSelfAttention's relative_position_index buffer: for window slots i, j (row-major (r, c) in the window),
// (r_i - r_j + ws - 1) * (2 ws - 1) + (c_i - c_j + ws - 1)
at::Tensor relative_position_index(int64_t ws) {
    const int64_t T = ws * ws;
    at::Tensor idx = at::empty({T, T}, at::kLong);
    int64_t * p = idx.data_ptr<int64_t>();
    for (int64_t i = 0; i < T; ++i)
        for (int64_t j = 0; j < T; ++j)
            p[i * T + j] = (i / ws - j / ws + ws - 1) * (2 * ws - 1) + (i % ws - j % ws + ws - 1);
    return idx;
}

// the window layout of a grid (H, W) for window ws and shift s, as SwinLayer.forward arranges it: pad the grid at
// the bottom/right to window multiples, roll by (-s, -s), partition into windows (row-major windows, row-major
// slots); the shift mask as get_attn_mask builds it (regions of the rolled padded grid, -100 across regions)
SwinWindowLayout build_layout(int64_t H, int64_t W, int64_t ws, int64_t s, c10::Device device, at::ScalarType dtype) {
    SwinWindowLayout l;
    l.height = H;
    l.width = W;
    l.shift = s;
    const int64_t Hp = (H + ws - 1) / ws * ws, Wp = (W + ws - 1) / ws * ws, T = ws * ws;
    l.windows_h = Hp / ws;
    l.windows_w = Wp / ws;
    const int64_t slots = Hp * Wp;
    at::Tensor gather = at::empty({slots}, at::kLong), scatter = at::empty({H * W}, at::kLong);
    int64_t * g = gather.data_ptr<int64_t>();
    int64_t * sc = scatter.data_ptr<int64_t>();
    std::vector<int64_t> pads;
    for (int64_t wi = 0; wi < l.windows_h; ++wi)
        for (int64_t wj = 0; wj < l.windows_w; ++wj)
            for (int64_t r = 0; r < ws; ++r)
                for (int64_t c = 0; c < ws; ++c) {
                    const int64_t slot = ((wi * l.windows_w + wj) * ws + r) * ws + c;
                    // torch.roll(x, -s): rolled[y] = padded[(y + s) mod Hp]
                    const int64_t py = (wi * ws + r + s) % Hp, px = (wj * ws + c + s) % Wp;
                    if (py < H && px < W) {
                        g[slot] = py * W + px;
                        sc[py * W + px] = slot;
                    } else {
                        g[slot] = 0;
                        pads.push_back(slot);
                    }
                }
    l.gather = gather.to(device);
    l.scatter = scatter.to(device);
    if (!pads.empty()) l.pad_slots = at::tensor(pads, at::kLong).to(device);
    if (s > 0) {
        // region of a rolled padded coordinate: [0, n - ws) -> 0, [n - ws, n - s) -> 1, [n - s, n) -> 2; windows
        // before the last row and column lie in region 0 (their rows/columns are < n - ws) and need no mask
        auto region = [&](int64_t y, int64_t n) { return y < n - ws ? 0 : (y < n - s ? 1 : 2); };
        auto window_mask = [&](int64_t wi, int64_t wj, float * m) {
            for (int64_t i = 0; i < T; ++i)
                for (int64_t j = 0; j < T; ++j) {
                    const int64_t ri = region(wi * ws + i / ws, Hp) * 3 + region(wj * ws + i % ws, Wp);
                    const int64_t rj = region(wi * ws + j / ws, Hp) * 3 + region(wj * ws + j % ws, Wp);
                    m[i * T + j] = ri == rj ? 0.0f : -100.0f;
                }
        };
        at::Tensor row = at::empty({l.windows_w, T, T}, at::kFloat);
        for (int64_t wj = 0; wj < l.windows_w; ++wj) window_mask(l.windows_h - 1, wj, row.data_ptr<float>() + wj * T * T);
        l.mask_last_row = row.to(device, dtype);
        if (l.windows_h > 1) {
            at::Tensor col = at::empty({l.windows_h - 1, T, T}, at::kFloat);
            for (int64_t wi = 0; wi + 1 < l.windows_h; ++wi)
                window_mask(wi, l.windows_w - 1, col.data_ptr<float>() + wi * T * T);
            l.mask_last_col = col.to(device, dtype);
        }
    }
    return l;
}

// `index` over the rows of one batch item, repeated for every item of a [B * n, ...] tensor
at::Tensor batched_index(const at::Tensor & index, int64_t batch, int64_t rows_per_item) {
    if (batch == 1) return index;
    at::Tensor offsets = at::arange(batch, index.options()).mul_(rows_per_item).unsqueeze(1);
    return (index.unsqueeze(0) + offsets).reshape({-1});
}

}  // namespace

at::Tensor SwinLinear::forward(const at::Tensor & x) const { return kernels::linear(x, weight, bias); }

at::Tensor SwinLayerNorm::forward(const at::Tensor & x) const { return kernels::layer_norm(x, weight, bias, eps); }

// ---------------------------------------------------------------- embeddings

SwinEmbeddings::SwinEmbeddings(const SwinConfig & c, const WeightView & w, const llm::Loader & load)
    : patch_(c.patch_size), channels_(c.num_channels), embed_dim_(c.embed_dim) {
    projection_weight_ = load(w, "embeddings.patch_embeddings.projection.weight", {embed_dim_, channels_, patch_, patch_})
                             .reshape({embed_dim_, channels_ * patch_ * patch_});
    projection_bias_ = load(w, "embeddings.patch_embeddings.projection.bias", {embed_dim_});
    norm_ = bind_norm(w, "embeddings.norm", embed_dim_, kTorchLayerNormEps, load);
}

std::pair<at::Tensor, std::pair<int64_t, int64_t>> SwinEmbeddings::forward(const at::Tensor & pixel_values) const {
    const int64_t B = pixel_values.size(0), H = pixel_values.size(2), W = pixel_values.size(3), p = patch_;
    const int64_t pad_h = (p - H % p) % p, pad_w = (p - W % p) % p;
    at::Tensor x = pixel_values;
    // SwinPatchEmbeddings.maybe_pad: zeros at the right, then at the bottom
    if (pad_h || pad_w) x = at::constant_pad_nd(x, {0, pad_w, 0, pad_h}, 0);
    const int64_t gh = (H + pad_h) / p, gw = (W + pad_w) / p;
    // Conv2d(k = stride = patch) as one GEMM over the unfolded patches: [B, C, gh, p, gw, p] -> [B*gh*gw, C*p*p]
    x = x.view({B, channels_, gh, p, gw, p}).permute({0, 2, 4, 1, 3, 5}).reshape({B * gh * gw, channels_ * p * p});
    at::Tensor e = kernels::linear(x, projection_weight_, projection_bias_).view({B, gh * gw, embed_dim_});
    return {norm_.forward(e), {gh, gw}};
}

// ---------------------------------------------------------------- attention

SwinSelfAttention::SwinSelfAttention(const SwinConfig & c, int64_t dim, int64_t heads, const WeightView & w,
                                     const llm::Loader & load)
    : heads_(heads), head_dim_(dim / heads), window_(c.window_size) {
    VLLM_CHECK(heads > 0 && dim % heads == 0, "config: Swin width ", dim, " is not a multiple of num_heads ", heads);
    const int64_t ws = window_, T = ws * ws, table_rows = (2 * ws - 1) * (2 * ws - 1);
    SwinLinear q = bind_linear(w, "query", dim, dim, c.qkv_bias, load), k = bind_linear(w, "key", dim, dim, c.qkv_bias, load),
               v = bind_linear(w, "value", dim, dim, c.qkv_bias, load);
    // (q k^T) / sqrt(d) == (q / sqrt(d)) k^T: the scale goes into the query projection (in fp32, then rounded)
    const double scale = 1.0 / std::sqrt(double(head_dim_));
    auto scaled = [&](const at::Tensor & t) { return t.to(at::kFloat).mul(scale).to(t.scalar_type()); };
    qkv_.weight = at::cat({scaled(q.weight), k.weight, v.weight}, 0);
    if (c.qkv_bias) qkv_.bias = at::cat({scaled(q.bias), k.bias, v.bias}, 0);

    at::Tensor table = load(w, "relative_position_bias_table", {table_rows, heads});
    at::Tensor index;
    if (w.contains("relative_position_index")) {
        // a persistent buffer: the reference uses the saved one
        index = w.get("relative_position_index", {T, T}).to(at::kLong);
        const int64_t lo = index.min().item<int64_t>(), hi = index.max().item<int64_t>();
        VLLM_CHECK(lo >= 0 && hi < table_rows, w.prefix(), "relative_position_index: values must lie in [0, ",
                   table_rows, "), found [", lo, ", ", hi, "]");
    } else {
        index = relative_position_index(ws);
    }
    relative_bias_ = table.index_select(0, index.reshape({-1}).to(table.device()))
                         .view({T, T, heads})
                         .permute({2, 0, 1})
                         .contiguous();
}

at::Tensor SwinSelfAttention::forward(const at::Tensor & windows, const SwinWindowLayout & layout,
                                      int64_t batch) const {
    const int64_t Bw = windows.size(0), T = windows.size(1), C = windows.size(2), h = heads_, d = head_dim_;
    // [Bw, T, 3, h, d]: each head's q, k, v are [Bw, T, d] matrices with row stride 3C, read in place by the GEMMs
    at::Tensor qkv = qkv_.forward(windows.view({Bw * T, C})).view({Bw, T, 3, h, d});
    at::Tensor q = qkv.select(2, 0), k = qkv.select(2, 1), v = qkv.select(2, 2);
    // scores [h, Bw, T, T] = relative_position_bias + q k^T (q already scaled)
    at::Tensor scores = at::empty({h, Bw, T, T}, windows.options());
    for (int64_t i = 0; i < h; ++i) {
        at::Tensor out = scores.select(0, i);
        at::baddbmm_out(out, relative_bias_.select(0, i).expand({Bw, T, T}), q.select(2, i),
                        k.select(2, i).transpose(1, 2));
    }
    if (layout.mask_last_row.defined()) {
        at::Tensor sc = scores.view({h, batch, layout.windows_h, layout.windows_w, T, T});
        sc.select(2, layout.windows_h - 1).add_(layout.mask_last_row);
        if (layout.mask_last_col.defined())
            sc.select(3, layout.windows_w - 1).narrow(2, 0, layout.windows_h - 1).add_(layout.mask_last_col);
    }
    at::Tensor probs;
    if (scores.scalar_type() == at::kFloat && scores.is_cpu()) {
        probs = at::softmax_out(scores, scores, -1);  // in place (ATen's CPU kernel allows it): no second buffer
    } else if (scores.scalar_type() == at::kFloat) {
        probs = at::softmax(scores, -1);
        scores.reset();
    } else {
        probs = at::softmax(scores, -1, at::kFloat).to(scores.scalar_type());  // fp32 softmax for bf16/f16
        scores.reset();
    }
    at::Tensor ctx = at::empty({h, Bw, T, d}, windows.options());
    for (int64_t i = 0; i < h; ++i) {
        at::Tensor out = ctx.select(0, i);
        at::bmm_out(out, probs.select(0, i), v.select(2, i));
    }
    return ctx.view({h, Bw * T, d}).permute({1, 0, 2});
}

// ---------------------------------------------------------------- block

SwinLayer::SwinLayer(const SwinConfig & c, int64_t dim, int64_t heads, int64_t shift, const WeightView & w,
                     const llm::Loader & load)
    : dim_(dim),
      shift_(shift),
      layernorm_before_(bind_norm(w, "layernorm_before", dim, c.layer_norm_eps, load)),
      layernorm_after_(bind_norm(w, "layernorm_after", dim, c.layer_norm_eps, load)),
      attention_(c, dim, heads, w.view("attention.self."), load),
      attention_output_(bind_linear(w, "attention.output.dense", dim, dim, true, load)),
      intermediate_(bind_linear(w, "intermediate.dense", mlp_dim(c, dim), dim, true, load)),
      output_(bind_linear(w, "output.dense", dim, mlp_dim(c, dim), true, load)) {}

at::Tensor SwinLayer::forward(const at::Tensor & x, const SwinWindowLayout & layout) const {
    const int64_t B = x.size(0), N = x.size(1), C = dim_;
    const int64_t slots = layout.gather.size(0), T = slots / (layout.windows_h * layout.windows_w);
    at::Tensor normed = layernorm_before_.forward(x).view({B * N, C});
    // pad + roll + window_partition as one gather; padding slots are zeros (the reference pads after the norm)
    at::Tensor windows = normed.index_select(0, batched_index(layout.gather, B, N));
    normed.reset();
    if (layout.pad_slots.defined()) windows.view({B, slots, C}).index_fill_(1, layout.pad_slots, 0);
    at::Tensor ctx = attention_.forward(windows.view({B * slots / T, T, C}), layout, B);  // [B*slots, h, d] view
    windows.reset();
    // window_reverse + reverse roll + crop (and the heads' transpose) as one gather, then attention.output.dense
    // and the residual
    at::Tensor tokens = ctx.index_select(0, batched_index(layout.scatter, B, slots)).view({B * N, C});
    ctx.reset();
    at::Tensor hidden = attention_output_.forward(tokens).view({B, N, C}).add_(x);
    tokens.reset();
    at::Tensor mid = kernels::linear(layernorm_after_.forward(hidden), intermediate_.weight);
    kernels::bias_act_(mid, intermediate_.bias, kernels::Activation::Gelu);
    return output_.forward(mid).add_(hidden);
}

// ---------------------------------------------------------------- patch merging

SwinPatchMerging::SwinPatchMerging(const SwinConfig &, int64_t dim, const WeightView & w, const llm::Loader & load)
    : dim_(dim),
      norm_(bind_norm(w, "norm", 4 * dim, kTorchLayerNormEps, load)),
      reduction_(bind_linear(w, "reduction", 2 * dim, 4 * dim, false, load)) {}

at::Tensor SwinPatchMerging::forward(const at::Tensor & x, int64_t height, int64_t width) const {
    const int64_t B = x.size(0), C = dim_;
    at::Tensor f = x.view({B, height, width, C});
    if (height % 2 || width % 2) f = at::constant_pad_nd(f, {0, 0, 0, width % 2, 0, height % 2}, 0);
    const int64_t h2 = (height + 1) / 2, w2 = (width + 1) / 2;
    // cat([x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]], -1): the column offset outer, the row inner
    f = f.view({B, h2, 2, w2, 2, C}).permute({0, 1, 3, 4, 2, 5}).reshape({B, h2 * w2, 4 * C});
    return reduction_.forward(norm_.forward(f));
}

// ---------------------------------------------------------------- stage

SwinStage::SwinStage(const SwinConfig & c, int64_t index, const WeightView & w, const llm::Loader & load)
    : dim_(stage_dim(c, index)),
      window_(c.window_size),
      shift_(c.window_size / 2),
      device_(load.device),
      dtype_(load.dtype),
      cache_mutex_(std::make_shared<std::mutex>()) {
    const int64_t depth = c.depths[size_t(index)], heads = c.num_heads[size_t(index)];
    blocks_.reserve(size_t(depth));
    for (int64_t b = 0; b < depth; ++b)
        blocks_.emplace_back(c, dim_, heads, b % 2 == 0 ? 0 : shift_, w.view(block_prefix(index, b)), load);
    if (index + 1 < int64_t(c.depths.size()))
        downsample_ = std::make_unique<SwinPatchMerging>(c, dim_, w.view(stage_prefix(index) + "downsample."), load);
}

std::shared_ptr<const SwinStage::Layouts> SwinStage::layouts(int64_t height, int64_t width) const {
    std::lock_guard<std::mutex> lock(*cache_mutex_);
    const auto key = std::make_pair(height, width);
    auto it = cache_.find(key);
    if (it != cache_.end()) return it->second;
    if (cache_.size() >= kMaxCachedGrids) cache_.clear();
    auto l = std::make_shared<Layouts>();
    l->plain = build_layout(height, width, window_, 0, device_, dtype_);
    if (shift_ > 0) l->shifted = build_layout(height, width, window_, shift_, device_, dtype_);
    cache_.emplace(key, l);
    return l;
}

at::Tensor SwinStage::forward(const at::Tensor & x, int64_t height, int64_t width) const {
    if (blocks_.empty()) return x;
    std::shared_ptr<const Layouts> l = layouts(height, width);
    at::Tensor h = x;
    for (const SwinLayer & b : blocks_) h = b.forward(h, b.shift() > 0 ? l->shifted : l->plain);
    return h;
}

// ---------------------------------------------------------------- backbone

SwinBackbone::SwinBackbone(const SwinConfig & c, const WeightView & w, const llm::Loader & load)
    : config_(c), embeddings_(c, w, load), out_features_(c.out_features) {
    VLLM_CHECK(c.hidden_act == "gelu", "config: Swin hidden_act '", c.hidden_act, "' is not supported (gelu)");
    VLLM_CHECK(!c.use_absolute_embeddings, "config: Swin use_absolute_embeddings true is not supported");
    VLLM_CHECK(!c.out_features.empty(), "config: Swin out_features is empty");
    const int64_t n = int64_t(c.depths.size());
    VLLM_CHECK(n >= 1 && int64_t(c.num_heads.size()) == n, "config: Swin depths and num_heads must have the same "
               "non-zero length, got ", c.depths.size(), " and ", c.num_heads.size());
    stages_.reserve(size_t(n));
    for (int64_t s = 0; s < n; ++s) stages_.emplace_back(c, s, w, load);
    for (const std::string & f : c.out_features) {
        int64_t level = -1;
        if (f == "stem") level = 0;
        for (int64_t s = 1; s <= n; ++s)
            if (f == "stage" + std::to_string(s)) level = s;
        VLLM_CHECK(level >= 0, "config: Swin out_features entry '", f, "' is not a stage name");
        VLLM_CHECK(out_levels_.empty() || level > out_levels_.back(), "config: Swin out_features must follow the "
                   "stage order without repeats");
        out_levels_.push_back(level);
        const int64_t ch = level == 0 ? c.embed_dim : stage_dim(c, level - 1);
        channels_.push_back(ch);
        norms_.push_back(bind_norm(w, "hidden_states_norms." + f, ch, kTorchLayerNormEps, load));
    }
}

std::vector<at::Tensor> SwinBackbone::forward(const at::Tensor & pixel_values) const {
    VLLM_CHECK(pixel_values.defined(), "SwinBackbone: pixel_values is undefined");
    VLLM_CHECK(pixel_values.dim() == 4 && pixel_values.size(1) == config_.num_channels,
               "SwinBackbone: pixel_values must be [B, ", config_.num_channels, ", H, W], got ", pixel_values.sizes());
    VLLM_CHECK(pixel_values.size(0) > 0 && pixel_values.size(2) > 0 && pixel_values.size(3) > 0,
               "SwinBackbone: pixel_values must not be empty, got ", pixel_values.sizes());
    VLLM_CHECK(at::isFloatingType(pixel_values.scalar_type()), "SwinBackbone: pixel_values must be a float tensor, got ",
               pixel_values.scalar_type());
    const at::Tensor & ref = norms_.front().weight;
    at::Tensor px = pixel_values.to(ref.device(), ref.scalar_type()).contiguous();
    const int64_t B = px.size(0);

    auto [x, grid] = embeddings_.forward(px);
    int64_t H = grid.first, W = grid.second;
    std::vector<at::Tensor> out(out_levels_.size());
    auto emit = [&](int64_t level, const at::Tensor & hidden) {
        for (size_t k = 0; k < out_levels_.size(); ++k)
            if (out_levels_[k] == level) {
                const int64_t C = hidden.size(2);
                out[k] = norms_[k].forward(hidden).view({B, H, W, C}).permute({0, 3, 1, 2}).contiguous();
            }
    };
    emit(0, x);
    const int64_t last = out_levels_.back();
    for (int64_t s = 0; s < last; ++s) {
        const SwinStage & stage = stages_[size_t(s)];
        at::Tensor before = stage.forward(x, H, W);  // hidden_states_before_downsampling
        emit(s + 1, before);
        if (s + 1 < last) {
            x = stage.downsample()->forward(before, H, W);
            H = (H + 1) / 2;
            W = (W + 1) / 2;
        }
    }
    return out;
}

std::vector<ExpectedTensor> swin_backbone_expected_weights(const SwinConfig & c) {
    std::vector<ExpectedTensor> w;
    const int64_t E = c.embed_dim, ws = c.window_size, T = ws * ws, n = int64_t(c.depths.size());
    w.push_back({"embeddings.patch_embeddings.projection.weight", {E, c.num_channels, c.patch_size, c.patch_size}});
    w.push_back({"embeddings.patch_embeddings.projection.bias", {E}});
    w.push_back({"embeddings.norm.weight", {E}});
    w.push_back({"embeddings.norm.bias", {E}});
    for (int64_t s = 0; s < n; ++s) {
        const int64_t dim = stage_dim(c, s), heads = c.num_heads[size_t(s)], mlp = mlp_dim(c, dim);
        for (int64_t b = 0; b < c.depths[size_t(s)]; ++b) {
            const std::string p = block_prefix(s, b);
            w.push_back({p + "layernorm_before.weight", {dim}});
            w.push_back({p + "layernorm_before.bias", {dim}});
            w.push_back({p + "attention.self.relative_position_bias_table", {(2 * ws - 1) * (2 * ws - 1), heads}});
            w.push_back({p + "attention.self.relative_position_index", {T, T}, /*optional=*/true});
            for (const char * proj : {"query", "key", "value"}) {
                w.push_back({p + "attention.self." + proj + ".weight", {dim, dim}});
                if (c.qkv_bias) w.push_back({p + "attention.self." + proj + ".bias", {dim}});
            }
            w.push_back({p + "attention.output.dense.weight", {dim, dim}});
            w.push_back({p + "attention.output.dense.bias", {dim}});
            w.push_back({p + "layernorm_after.weight", {dim}});
            w.push_back({p + "layernorm_after.bias", {dim}});
            w.push_back({p + "intermediate.dense.weight", {mlp, dim}});
            w.push_back({p + "intermediate.dense.bias", {mlp}});
            w.push_back({p + "output.dense.weight", {dim, mlp}});
            w.push_back({p + "output.dense.bias", {dim}});
        }
        if (s + 1 < n) {
            const std::string p = stage_prefix(s) + "downsample.";
            w.push_back({p + "reduction.weight", {2 * dim, 4 * dim}});
            w.push_back({p + "norm.weight", {4 * dim}});
            w.push_back({p + "norm.bias", {4 * dim}});
        }
    }
    for (const std::string & f : c.out_features) {
        int64_t ch = E;
        for (int64_t s = 1; s <= n; ++s)
            if (f == "stage" + std::to_string(s)) ch = stage_dim(c, s - 1);
        w.push_back({"hidden_states_norms." + f + ".weight", {ch}});
        w.push_back({"hidden_states_norms." + f + ".bias", {ch}});
    }
    return w;
}

}  // namespace visionllm::gdino
