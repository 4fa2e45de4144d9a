#include "decoders/gdino/postprocess.h"

#include <ATen/ATen.h>

#include <cmath>
#include <functional>

#include "visionllm/error.h"

namespace visionllm::gdino {

namespace {

std::string shape_of(const at::Tensor & t) {
    std::string s = "[";
    for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
    return s + "]";
}

// [1, ...] -> [...] for an argument given with its batch dimension of one image
at::Tensor drop_batch(const at::Tensor & t, int64_t dims, const char * name) {
    if (!t.defined()) fail("post-processing: ", name, " is undefined");
    if (t.dim() == dims + 1) {
        if (t.size(0) != 1) fail("post-processing: ", name, " ", shape_of(t), " holds ", t.size(0), " images; pass one");
        return t.select(0, 0);
    }
    if (t.dim() != dims) fail("post-processing: ", name, " must have ", dims, " dimensions (or ", dims + 1,
                              " with a batch of 1), got ", shape_of(t));
    return t;
}

void check_float(const at::Tensor & t, const char * name) {
    if (!at::isFloatingType(t.scalar_type()))
        fail("post-processing: ", name, " must be a floating-point tensor, got ", c10::toString(t.scalar_type()));
}

// mask logits [K, h, w] float32 -> per mask the float32 logits at the original size (reference order of ops)
void for_each_mask(const at::Tensor & mask_logits, int64_t rw, int64_t rh, int64_t width, int64_t height, int64_t stride,
                   const std::function<void(int64_t, const at::Tensor &)> & fn) {
    at::Tensor m = drop_batch(mask_logits, 3, "mask_logits");
    check_float(m, "mask_logits");
    if (stride < 1) fail("post_process_masks: mask_stride must be >= 1, got ", stride);
    if (width < 1 || height < 1) fail("post_process_masks: invalid original size ", width, "x", height);
    const int64_t h = m.size(1), w = m.size(2);
    if (h < 1 || w < 1) fail("post_process_masks: mask_logits ", shape_of(mask_logits), " has an empty mask");
    if (rw < 1 || rh < 1 || rw > w * stride || rh > h * stride)
        fail("post_process_masks: the resized size ", rw, "x", rh, " must be within the padded mask size ",
             w * stride, "x", h * stride, " (mask_logits ", shape_of(mask_logits), ", mask_stride ", stride, ")");
    m = m.to(at::kFloat);
    for (int64_t k = 0; k < m.size(0); ++k) {
        const at::Tensor one = m.narrow(0, k, 1).unsqueeze(1);  // [1, 1, h, w]
        at::Tensor up = at::upsample_bilinear2d(one, {h * stride, w * stride}, false);
        up = up.narrow(2, 0, rh).narrow(3, 0, rw);  // remove the padding
        const at::Tensor full = at::upsample_bilinear2d(up, {height, width}, false);
        fn(k, full.view({height, width}));
    }
}

}  // namespace

std::vector<Detection> post_process_detections(const at::Tensor & logits_in, const at::Tensor & boxes_in,
                                               int64_t num_classes, int64_t topk, int64_t width, int64_t height,
                                               float threshold) {
    const at::Tensor logits = drop_batch(logits_in, 2, "logits");
    const at::Tensor boxes = drop_batch(boxes_in, 2, "boxes");
    check_float(logits, "logits");
    check_float(boxes, "boxes");
    const int64_t Q = logits.size(0), L = logits.size(1);
    if (Q < 1) fail("post_process_detections: logits ", shape_of(logits_in), " has no queries");
    if (num_classes < 1 || num_classes > L)
        fail("post_process_detections: num_classes must be in [1, ", L, "] (the logits width), got ", num_classes);
    if (boxes.size(0) != Q || boxes.size(1) != 4)
        fail("post_process_detections: boxes must be [", Q, ", 4] to match logits ", shape_of(logits_in), ", got ",
             shape_of(boxes_in));
    if (topk < 1) fail("post_process_detections: topk must be >= 1, got ", topk);
    if (width < 1 || height < 1) fail("post_process_detections: invalid image size ", width, "x", height);
    if (std::isnan(threshold)) fail("post_process_detections: threshold is NaN");

    const at::Tensor prob = logits.to(at::kFloat).narrow(1, 0, num_classes).sigmoid().reshape({-1});
    const int64_t k = std::min(topk, prob.size(0));
    auto [scores, index] = at::topk(prob, k, 0, /*largest=*/true, /*sorted=*/true);
    const at::Tensor query = index.div(num_classes, "floor");
    const at::Tensor label = index.remainder(num_classes);
    // box_cxcywh_to_xyxy, then gather and scale as the reference does
    const at::Tensor b = boxes.to(at::kFloat);
    const at::Tensor cx = b.select(1, 0), cy = b.select(1, 1), bw = b.select(1, 2), bh = b.select(1, 3);
    const at::Tensor xyxy = at::stack({cx - 0.5 * bw, cy - 0.5 * bh, cx + 0.5 * bw, cy + 0.5 * bh}, 1);
    const at::Tensor scale = at::tensor({float(width), float(height), float(width), float(height)},
                                        at::TensorOptions().dtype(at::kFloat)).to(b.device());
    const at::Tensor kept_boxes = (xyxy.index_select(0, query) * scale).cpu().contiguous();
    const at::Tensor s = scores.cpu().contiguous(), q = query.cpu().contiguous(), l = label.cpu().contiguous();

    std::vector<Detection> out;
    const float * sp = s.data_ptr<float>();
    const int64_t * qp = q.data_ptr<int64_t>();
    const int64_t * lp = l.data_ptr<int64_t>();
    const float * bp = kept_boxes.data_ptr<float>();
    for (int64_t i = 0; i < k; ++i) {
        if (!(sp[i] > threshold)) continue;  // s[s > threshold]
        Detection d;
        d.score = sp[i];
        d.query = qp[i];
        d.label = lp[i];
        for (int j = 0; j < 4; ++j) d.box[j] = bp[i * 4 + j];
        out.push_back(d);
    }
    return out;
}

at::Tensor detection_queries(const std::vector<Detection> & dets) {
    at::Tensor q = at::empty({int64_t(dets.size())}, at::kLong);
    int64_t * p = q.data_ptr<int64_t>();
    for (size_t i = 0; i < dets.size(); ++i) p[i] = dets[i].query;
    return q;
}

at::Tensor post_process_masks(const at::Tensor & mask_logits, int64_t resized_width, int64_t resized_height,
                              int64_t width, int64_t height, int64_t mask_stride) {
    const int64_t K = mask_logits.defined() && mask_logits.dim() >= 3 ? mask_logits.size(mask_logits.dim() - 3) : 0;
    at::Tensor out;
    for_each_mask(mask_logits, resized_width, resized_height, width, height, mask_stride,
                  [&](int64_t k, const at::Tensor & full) {
                      if (!out.defined()) out = at::empty({K, height, width}, full.options().dtype(at::kBool));
                      out.select(0, k).copy_(full.sigmoid() > 0.5);
                  });
    if (!out.defined()) out = at::empty({0, height, width}, mask_logits.options().dtype(at::kBool));
    return out;
}

std::vector<Rle> post_process_masks_rle(const at::Tensor & mask_logits, int64_t resized_width, int64_t resized_height,
                                        int64_t width, int64_t height, int64_t mask_stride) {
    std::vector<Rle> out;
    for_each_mask(mask_logits, resized_width, resized_height, width, height, mask_stride,
                  [&](int64_t, const at::Tensor & full) { out.push_back(encode_rle(full.sigmoid() > 0.5)); });
    return out;
}

Rle encode_rle(const at::Tensor & mask) {
    if (!mask.defined() || mask.dim() != 2)
        fail("encode_rle: mask must be a 2-D [height, width] tensor, got ",
             mask.defined() ? shape_of(mask) : std::string("an undefined tensor"));
    if (mask.is_complex() || at::isFloatingType(mask.scalar_type()))
        fail("encode_rle: mask must be bool or integer, got ", c10::toString(mask.scalar_type()));
    // column-major order (Fortran, as pycocotools wants it): the transposed mask, row by row
    const at::Tensor t = mask.ne(0).t().contiguous().cpu().to(at::kByte);
    return eval::rle_encode(t.data_ptr<uint8_t>(), mask.size(0), mask.size(1));
}

}  // namespace visionllm::gdino
