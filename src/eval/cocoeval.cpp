// COCOeval (see cocoeval.h): our own implementation of pycocotools' evaluation semantics, organised for speed:
// ground truth and detections are bucketed once per (category, image), the IoU / OKS matrices and the greedy
// matching run in parallel over those buckets, and accumulation walks flat arrays.
#include "eval/cocoeval.h"

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <cmath>
#include <cstdio>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>
#include <unordered_map>

#include "visionllm/error.h"

namespace visionllm::eval {

namespace {

constexpr double kEps = 2.220446049250313e-16;  // np.spacing(1)

// numpy's linspace(start, stop, num): start + i * step, the last one exactly stop
std::vector<double> linspace(double start, double stop, int64_t num) {
    std::vector<double> y(static_cast<size_t>(num));
    const double step = (stop - start) / double(num - 1);
    for (int64_t i = 0; i < num; ++i) y[size_t(i)] = double(i) * step + start;
    y.back() = stop;
    return y;
}

// numpy's pairwise summation (add.reduce over a contiguous float64 array), so that OKS sums round the same way
double np_sum(const double * a, size_t n) {
    if (n < 8) {
        double s = 0;  // numpy starts from -0.0 / the first element; adding to 0 is the same for these values
        for (size_t i = 0; i < n; ++i) s += a[i];
        return s;
    }
    if (n <= 128) {
        double r[8];
        for (int j = 0; j < 8; ++j) r[j] = a[j];
        size_t i = 8;
        for (; i < n - n % 8; i += 8)
            for (int j = 0; j < 8; ++j) r[j] += a[i + j];
        double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; ++i) res += a[i];
        return res;
    }
    size_t n2 = n / 2;
    n2 -= n2 % 8;
    return np_sum(a, n2) + np_sum(a + n2, n - n2);
}

// runs fn(begin, end) over [0, n) on up to `threads` threads; the first exception is rethrown
template <class Fn>
void parallel_for(int64_t n, int threads, Fn fn) {
    if (n <= 0) return;
    int t = threads > 0 ? threads : int(std::max(1u, std::thread::hardware_concurrency()));
    t = int(std::min<int64_t>(t, n));
    if (t <= 1) {
        fn(int64_t(0), n);
        return;
    }
    std::exception_ptr err;
    std::mutex mu;
    std::vector<std::thread> pool;
    // interleaved chunks balance categories of very different sizes
    const int64_t chunk = std::max<int64_t>(1, n / (int64_t(t) * 16));
    std::atomic<int64_t> next{0};
    for (int w = 0; w < t; ++w) {
        pool.emplace_back([&] {
            for (;;) {
                const int64_t b = next.fetch_add(chunk);
                if (b >= n) return;
                try {
                    fn(b, std::min(n, b + chunk));
                } catch (...) {
                    std::lock_guard<std::mutex> lock(mu);
                    if (!err) err = std::current_exception();
                    return;
                }
            }
        });
    }
    for (auto & th : pool) th.join();
    if (err) std::rethrow_exception(err);
}

// one (category, image) bucket after evaluateImg for every area range
struct PairEval {
    bool valid = false;            // pycocotools' evalImg is None when the bucket has no gt and no dt
    std::vector<double> scores;    // detections by descending score (stable), at most maxDets[-1]
    std::vector<uint8_t> flags;    // [A][T][D]: bit 0 matched (dtm "true"), bit 1 ignored
    std::vector<int32_t> npig;     // [A]: ground truth not ignored
};

std::string fmt(const char * f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char * f, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

}  // namespace

IouType parse_iou_type(const std::string & s) {
    if (s == "bbox") return IouType::Bbox;
    if (s == "segm") return IouType::Segm;
    if (s == "keypoints") return IouType::Keypoints;
    fail("iou type '", s, "' is not one of bbox, segm, keypoints");
}

Flavor parse_flavor(const std::string & s) {
    if (s == "coco") return Flavor::Coco;
    if (s == "crowdpose") return Flavor::CrowdPose;
    fail("dataset '", s, "' is not one of coco, crowdpose");
}

const char * to_string(IouType t) {
    switch (t) {
    case IouType::Bbox: return "bbox";
    case IouType::Segm: return "segm";
    case IouType::Keypoints: return "keypoints";
    }
    return "?";
}

const std::vector<double> & coco_keypoint_sigmas() {
    static const std::vector<double> s = [] {
        std::vector<double> v = {.26, .25, .25, .35, .35, .79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89};
        for (double & x : v) x /= 10.0;
        return v;
    }();
    return s;
}

const std::vector<double> & crowdpose_keypoint_sigmas() {
    static const std::vector<double> s = [] {
        std::vector<double> v = {.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79};
        for (double & x : v) x /= 10.0;
        return v;
    }();
    return s;
}

EvalParams EvalParams::defaults(IouType t, Flavor f) {
    EvalParams p;
    p.iou_type = t;
    p.flavor = f;
    p.iou_thrs = linspace(.5, 0.95, int64_t(std::round((0.95 - .5) / .05)) + 1);
    p.rec_thrs = linspace(.0, 1.00, int64_t(std::round((1.00 - .0) / .01)) + 1);
    if (t == IouType::Keypoints) {
        p.max_dets = {20};
        p.area_rng = {{0, 1e5 * 1e5}, {32 * 32, 96 * 96}, {96 * 96, 1e5 * 1e5}};
        p.area_lbl = {"all", "medium", "large"};
        p.sigmas = f == Flavor::CrowdPose ? crowdpose_keypoint_sigmas() : coco_keypoint_sigmas();
        p.use_area = f != Flavor::CrowdPose;
    } else {
        p.max_dets = {1, 10, 100};
        p.area_rng = {{0, 1e5 * 1e5}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e5 * 1e5}};
        p.area_lbl = {"all", "small", "medium", "large"};
    }
    return p;
}

struct CocoEval::Impl {
    const CocoDataset & gt;
    const std::vector<CocoAnnotation> & dt;
    EvalParams p;
    int threads;

    // the run's ids (sorted, unique) and buckets [k * I + i] of indices into gt.annotations / dt
    std::vector<int64_t> img_ids, cat_ids;
    std::vector<std::vector<int32_t>> gts, dts;
    std::vector<uint8_t> gt_ignore;       // per gt annotation: crowd (and no keypoints)
    std::vector<double> gt_range_area;    // per gt annotation: the area compared with the area ranges
    std::vector<Rle> gt_rle, dt_rle;      // segm
    std::vector<PairEval> pairs;          // [k * I + i]
    bool evaluated = false;
    std::vector<double> precision, recall, scores;

    Impl(const CocoDataset & g, const std::vector<CocoAnnotation> & d, EvalParams params, int t)
        : gt(g), dt(d), p(std::move(params)), threads(t) {}

    int64_t I() const { return int64_t(img_ids.size()); }
    int64_t K() const { return p.use_cats ? int64_t(cat_ids.size()) : 1; }
    int64_t T() const { return int64_t(p.iou_thrs.size()); }
    int64_t R() const { return int64_t(p.rec_thrs.size()); }
    int64_t A() const { return int64_t(p.area_rng.size()); }
    int64_t M() const { return int64_t(p.max_dets.size()); }
    bool xt() const { return p.flavor == Flavor::CrowdPose; }

    void prepare(const std::vector<int64_t> & ids) {
        img_ids = ids;
        std::sort(img_ids.begin(), img_ids.end());
        img_ids.erase(std::unique(img_ids.begin(), img_ids.end()), img_ids.end());
        std::unordered_map<int64_t, int64_t> img_pos, cat_pos;
        for (size_t i = 0; i < img_ids.size(); ++i) img_pos.emplace(img_ids[i], int64_t(i));
        for (size_t k = 0; k < cat_ids.size(); ++k) cat_pos.emplace(cat_ids[k], int64_t(k));
        const int64_t I_ = I(), K_ = K();
        gts.assign(size_t(I_ * K_), {});
        dts.assign(size_t(I_ * K_), {});
        auto bucket = [&](const CocoAnnotation & a) -> int64_t {
            const auto ii = img_pos.find(a.image_id);
            if (ii == img_pos.end()) return -1;
            int64_t k = 0;
            if (p.use_cats) {
                const auto kk = cat_pos.find(a.category_id);
                if (kk == cat_pos.end()) return -1;
                k = kk->second;
            }
            return k * I_ + ii->second;
        };
        const size_t nk = p.sigmas.size();
        const bool kp = p.iou_type == IouType::Keypoints;
        gt_ignore.assign(gt.annotations.size(), 0);
        gt_range_area.assign(gt.annotations.size(), 0);
        if (p.iou_type == IouType::Segm) gt_rle.assign(gt.annotations.size(), Rle{});
        for (size_t j = 0; j < gt.annotations.size(); ++j) {
            const CocoAnnotation & a = gt.annotations[j];
            const int64_t b = bucket(a);
            if (b < 0) continue;
            gts[size_t(b)].push_back(int32_t(j));
            // pycocotools: ignore = iscrowd (an "ignore" field is overwritten), and for keypoints num_keypoints == 0
            bool ig = a.iscrowd;
            if (kp) {
                VLLM_CHECK(a.has_num_keypoints, gt.source, ": annotation ", a.id, " has no num_keypoints");
                VLLM_CHECK(a.keypoints.size() == 3 * nk, gt.source, ": annotation ", a.id, " has ",
                           a.keypoints.size(), " keypoint values, expected ", 3 * nk, " (", nk, " keypoints)");
                ig = a.num_keypoints == 0 || ig;
            }
            gt_ignore[j] = ig;
            if (p.use_area && a.has_area) {
                gt_range_area[j] = a.area;
            } else {
                VLLM_CHECK(!p.use_area || xt(), gt.source, ": annotation ", a.id, " has no area");
                VLLM_CHECK(a.has_bbox, gt.source, ": annotation ", a.id, " has neither area nor bbox");
                gt_range_area[j] = a.bbox[2] * a.bbox[3] * 0.53;
            }
            if (p.iou_type != IouType::Segm)
                VLLM_CHECK(a.has_bbox, gt.source, ": annotation ", a.id, " has no bbox");
            if (p.iou_type == IouType::Segm) gt_rle[j] = annotation_rle(gt, a, "annotation");
        }
        if (p.iou_type == IouType::Segm) dt_rle.assign(dt.size(), Rle{});
        for (size_t j = 0; j < dt.size(); ++j) {
            const CocoAnnotation & d = dt[j];
            const int64_t b = bucket(d);
            if (b < 0) continue;
            if (kp) {
                VLLM_CHECK(d.keypoints.size() == 3 * nk, "results[", d.id - 1, "] (image ", d.image_id, ") has ",
                           d.keypoints.size(), " keypoint values, expected ", 3 * nk, " (", nk, " keypoints x, y, v)");
                if (xt()) {  // xtcocotools drops detections without a visible keypoint
                    bool any = false;
                    for (size_t q = 2; q < d.keypoints.size(); q += 3) any = any || d.keypoints[q] > 0;
                    if (!any) continue;
                }
            } else if (p.iou_type == IouType::Bbox) {
                VLLM_CHECK(d.has_bbox, "results[", d.id - 1, "] has no bbox");
            }
            dts[size_t(b)].push_back(int32_t(j));
            if (p.iou_type == IouType::Segm) dt_rle[j] = annotation_rle(gt, d, "result");
        }
    }

    // ious [D][G] (detections by score, gt in bucket order)
    void compute_iou(int64_t b, const std::vector<int32_t> & dsorted, std::vector<double> & ious) const {
        const auto & g = gts[size_t(b)];
        const size_t D = dsorted.size(), G = g.size();
        ious.assign(D * G, 0.0);
        if (D == 0 || G == 0) return;
        if (p.iou_type == IouType::Keypoints) {
            compute_oks(g, dsorted, ious);
            return;
        }
        for (size_t gi = 0; gi < G; ++gi) {
            const CocoAnnotation & ga = gt.annotations[size_t(g[gi])];
            for (size_t di = 0; di < D; ++di) {
                const size_t dj = size_t(dsorted[di]);
                ious[di * G + gi] = p.iou_type == IouType::Bbox
                                        ? bbox_iou(dt[dj].bbox, ga.bbox, ga.iscrowd)
                                        : rle_iou(dt_rle[dj], gt_rle[size_t(g[gi])], ga.iscrowd);
            }
        }
    }

    void compute_oks(const std::vector<int32_t> & g, const std::vector<int32_t> & dsorted, std::vector<double> & ious) const {
        const size_t nk = p.sigmas.size(), G = g.size();
        std::vector<double> vars(nk), e(nk);
        for (size_t q = 0; q < nk; ++q) vars[q] = (p.sigmas[q] * 2) * (p.sigmas[q] * 2);
        for (size_t gi = 0; gi < G; ++gi) {
            const CocoAnnotation & ga = gt.annotations[size_t(g[gi])];
            const double * kg = ga.keypoints.data();
            int k1 = 0;
            for (size_t q = 0; q < nk; ++q) k1 += kg[3 * q + 2] > 0;
            const double * bb = ga.bbox;
            const double x0 = bb[0] - bb[2], x1 = bb[0] + bb[2] * 2, y0 = bb[1] - bb[3], y1 = bb[1] + bb[3] * 2;
            const double area = p.use_area ? ga.area : bb[3] * bb[2] * 0.53;
            for (size_t di = 0; di < dsorted.size(); ++di) {
                const double * kd = dt[size_t(dsorted[di])].keypoints.data();
                size_t n = 0;
                for (size_t q = 0; q < nk; ++q) {
                    double dx, dy;
                    if (k1 > 0) {
                        if (!(kg[3 * q + 2] > 0)) continue;
                        dx = kd[3 * q] - kg[3 * q];
                        dy = kd[3 * q + 1] - kg[3 * q + 1];
                    } else {
                        const double xd = kd[3 * q], yd = kd[3 * q + 1];
                        dx = std::max(0.0, x0 - xd) + std::max(0.0, xd - x1);
                        dy = std::max(0.0, y0 - yd) + std::max(0.0, yd - y1);
                    }
                    const double v = (dx * dx + dy * dy) / vars[q] / (area + kEps) / 2;
                    e[n++] = std::exp(-v);
                }
                ious[di * G + gi] = np_sum(e.data(), n) / double(n);
            }
        }
    }

    void evaluate_pair(int64_t b) {
        const auto & g = gts[size_t(b)];
        const auto & dl = dts[size_t(b)];
        PairEval & pe = pairs[size_t(b)];
        pe = PairEval{};
        if (g.empty() && dl.empty()) return;
        pe.valid = true;
        const int64_t maxdet = p.max_dets.back();
        std::vector<int32_t> dsorted(dl);
        std::stable_sort(dsorted.begin(), dsorted.end(),
                         [&](int32_t a, int32_t c) { return -dt[size_t(a)].score < -dt[size_t(c)].score; });
        if (int64_t(dsorted.size()) > maxdet) dsorted.resize(size_t(maxdet));
        std::vector<double> ious;
        compute_iou(b, dsorted, ious);
        const size_t D = dsorted.size(), G = g.size();
        const int64_t T_ = T(), A_ = A();
        pe.scores.resize(D);
        for (size_t d = 0; d < D; ++d) pe.scores[d] = dt[size_t(dsorted[d])].score;
        pe.flags.assign(size_t(A_ * T_) * D, 0);
        pe.npig.assign(size_t(A_), 0);
        std::vector<uint8_t> gig(G);
        std::vector<size_t> gind(G);
        std::vector<uint8_t> taken(G);
        for (int64_t a = 0; a < A_; ++a) {
            const double lo = p.area_rng[size_t(a)][0], hi = p.area_rng[size_t(a)][1];
            for (size_t j = 0; j < G; ++j) {
                const double ar = gt_range_area[size_t(g[j])];
                gig[j] = gt_ignore[size_t(g[j])] || ar < lo || ar > hi;
            }
            // ground truth with ignore last (stable)
            std::iota(gind.begin(), gind.end(), 0);
            std::stable_sort(gind.begin(), gind.end(), [&](size_t x, size_t y) { return gig[x] < gig[y]; });
            int32_t npig = 0;
            for (size_t j = 0; j < G; ++j) npig += gig[j] == 0;
            pe.npig[size_t(a)] = npig;
            uint8_t * fl = pe.flags.data() + size_t(a * T_) * D;
            for (int64_t t = 0; t < T_; ++t) {
                std::fill(taken.begin(), taken.end(), 0);
                uint8_t * ft = fl + size_t(t) * D;
                if (G > 0) {
                    for (size_t d = 0; d < D; ++d) {
                        double iou = std::min(p.iou_thrs[size_t(t)], 1 - 1e-10);
                        int64_t m = -1;
                        for (size_t s = 0; s < G; ++s) {
                            const size_t gi = gind[s];
                            if (taken[s] && !gt.annotations[size_t(g[gi])].iscrowd) continue;
                            if (m > -1 && gig[gind[size_t(m)]] == 0 && gig[gi] == 1) break;
                            const double v = ious[d * G + gi];
                            if (v < iou) continue;
                            iou = v;
                            m = int64_t(s);
                        }
                        if (m == -1) continue;
                        const size_t gm = gind[size_t(m)];
                        const int64_t gid = gt.annotations[size_t(g[gm])].id;
                        // pycocotools stores the matched gt id and tests it against 0; xtcocotools against -1
                        const bool matched = xt() ? gid >= 0 : gid != 0;
                        ft[d] = uint8_t((matched ? 1 : 0) | (gig[gm] ? 2 : 0));
                        taken[size_t(m)] = 1;
                    }
                }
                // unmatched detections outside the area range are ignored
                for (size_t d = 0; d < D; ++d) {
                    const double ar = dt[size_t(dsorted[d])].area;
                    if (!(ft[d] & 1) && (ar < lo || ar > hi)) ft[d] |= 2;
                }
            }
        }
    }

    void evaluate_ids(const std::vector<int64_t> & ids) {
        prepare(ids);
        pairs.assign(gts.size(), PairEval{});
        parallel_for(int64_t(pairs.size()), threads, [&](int64_t b0, int64_t b1) {
            for (int64_t b = b0; b < b1; ++b) evaluate_pair(b);
        });
        evaluated = true;
    }

    void accumulate() {
        VLLM_CHECK(evaluated, "COCOeval: accumulate() before evaluate()");
        const int64_t T_ = T(), R_ = R(), K_ = K(), A_ = A(), M_ = M(), I_ = I();
        precision.assign(size_t(T_ * R_ * K_ * A_ * M_), -1.0);
        recall.assign(size_t(T_ * K_ * A_ * M_), -1.0);
        scores.assign(precision.size(), -1.0);
        auto pidx = [&](int64_t t, int64_t r, int64_t k, int64_t a, int64_t m) {
            return size_t((((t * R_ + r) * K_ + k) * A_ + a) * M_ + m);
        };
        parallel_for(K_, threads, [&](int64_t k0, int64_t k1) {
            std::vector<std::pair<int64_t, int32_t>> refs;  // (pair, detection)
            std::vector<double> sc, rc, pr;
            std::vector<size_t> order;
            for (int64_t k = k0; k < k1; ++k) {
                for (int64_t a = 0; a < A_; ++a) {
                    for (int64_t m = 0; m < M_; ++m) {
                        const int64_t maxdet = p.max_dets[size_t(m)];
                        refs.clear();
                        sc.clear();
                        int64_t npig = 0;
                        bool any = false;
                        for (int64_t i = 0; i < I_; ++i) {
                            const PairEval & pe = pairs[size_t(k * I_ + i)];
                            if (!pe.valid) continue;
                            any = true;
                            npig += pe.npig[size_t(a)];
                            const int64_t D = std::min<int64_t>(maxdet, int64_t(pe.scores.size()));
                            for (int64_t d = 0; d < D; ++d) {
                                refs.emplace_back(k * I_ + i, int32_t(d));
                                sc.push_back(pe.scores[size_t(d)]);
                            }
                        }
                        if (!any || npig == 0) continue;
                        order.resize(sc.size());
                        std::iota(order.begin(), order.end(), 0);
                        std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return -sc[x] < -sc[y]; });
                        const size_t nd = order.size();
                        rc.resize(nd);
                        pr.resize(nd);
                        for (int64_t t = 0; t < T_; ++t) {
                            double tp = 0, fp = 0;
                            for (size_t j = 0; j < nd; ++j) {
                                const auto & ref = refs[order[j]];
                                const PairEval & pe = pairs[size_t(ref.first)];
                                const size_t D = pe.scores.size();
                                const uint8_t f = pe.flags[size_t(a * T_ + t) * D + size_t(ref.second)];
                                if (!(f & 2)) {
                                    if (f & 1) {
                                        tp += 1;
                                    } else {
                                        fp += 1;
                                    }
                                }
                                rc[j] = tp / double(npig);
                                pr[j] = tp / (fp + tp + kEps);
                            }
                            recall[size_t(((t * K_ + k) * A_ + a) * M_ + m)] = nd ? rc[nd - 1] : 0;
                            for (size_t j = nd; j-- > 1;)
                                if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
                            for (int64_t r = 0; r < R_; ++r) {
                                const size_t pi = size_t(std::lower_bound(rc.begin(), rc.end(), p.rec_thrs[size_t(r)]) - rc.begin());
                                if (pi >= nd) {  // pycocotools stops at the first recall threshold past the end
                                    for (int64_t r2 = r; r2 < R_; ++r2) {
                                        precision[pidx(t, r2, k, a, m)] = 0;
                                        scores[pidx(t, r2, k, a, m)] = 0;
                                    }
                                    break;
                                }
                                precision[pidx(t, r, k, a, m)] = pr[pi];
                                scores[pidx(t, r, k, a, m)] = sc[order[pi]];
                            }
                        }
                    }
                }
            }
        });
    }

    // pycocotools' _summarize
    double summarize_one(bool ap, double iou_thr, const std::string & area, int64_t max_det, std::string & text) const {
        const int64_t T_ = T(), R_ = R(), K_ = K(), A_ = A(), M_ = M();
        int64_t aind = -1, mind = -1;
        for (int64_t a = 0; a < A_; ++a)
            if (p.area_lbl[size_t(a)] == area) aind = a;
        for (int64_t m = 0; m < M_; ++m)
            if (p.max_dets[size_t(m)] == max_det) mind = m;
        double sum = 0;
        int64_t n = 0;
        if (aind >= 0 && mind >= 0) {
            for (int64_t t = 0; t < T_; ++t) {
                if (iou_thr >= 0 && !(p.iou_thrs[size_t(t)] == iou_thr)) continue;
                if (ap) {
                    for (int64_t r = 0; r < R_; ++r)
                        for (int64_t k = 0; k < K_; ++k) {
                            const double v = precision[size_t((((t * R_ + r) * K_ + k) * A_ + aind) * M_ + mind)];
                            if (v > -1) sum += v, ++n;
                        }
                } else {
                    for (int64_t k = 0; k < K_; ++k) {
                        const double v = recall[size_t(((t * K_ + k) * A_ + aind) * M_ + mind)];
                        if (v > -1) sum += v, ++n;
                    }
                }
            }
        }
        const double mean = n == 0 ? -1 : sum / double(n);
        const std::string iou_str = iou_thr < 0 ? fmt("%0.2f:%0.2f", p.iou_thrs.front(), p.iou_thrs.back())
                                                : fmt("%0.2f", iou_thr);
        text += fmt(" %-18s %s @[ IoU=%-9s | area=%6s | maxDets=%3lld ] = %0.3f\n",
                    ap ? "Average Precision" : "Average Recall", ap ? "(AP)" : "(AR)", iou_str.c_str(), area.c_str(),
                    (long long)max_det, mean);
        return mean;
    }
};

CocoEval::CocoEval(const CocoDataset & gt, const std::vector<CocoAnnotation> & dt, EvalParams params, int threads)
    : impl_(new Impl(gt, dt, std::move(params), threads)) {
    EvalParams & p = impl_->p;
    VLLM_CHECK(!p.iou_thrs.empty() && !p.rec_thrs.empty() && !p.max_dets.empty() && !p.area_rng.empty() &&
                   p.area_rng.size() == p.area_lbl.size(),
               "COCOeval: incomplete parameters");
    VLLM_CHECK(p.iou_type != IouType::Keypoints || !p.sigmas.empty(), "COCOeval: keypoints need sigmas");
    std::sort(p.max_dets.begin(), p.max_dets.end());
    if (p.cat_ids.empty())
        for (const auto & c : gt.categories) p.cat_ids.push_back(c.id);
    impl_->cat_ids = p.cat_ids;
    std::sort(impl_->cat_ids.begin(), impl_->cat_ids.end());
    impl_->cat_ids.erase(std::unique(impl_->cat_ids.begin(), impl_->cat_ids.end()), impl_->cat_ids.end());
    if (p.img_ids.empty())
        for (const auto & im : gt.images) p.img_ids.push_back(im.id);
}

CocoEval::~CocoEval() { delete impl_; }

void CocoEval::evaluate() { impl_->evaluate_ids(impl_->p.img_ids); }
void CocoEval::accumulate() { impl_->accumulate(); }
const std::vector<double> & CocoEval::precision() const { return impl_->precision; }
const std::vector<double> & CocoEval::recall() const { return impl_->recall; }
const EvalParams & CocoEval::params() const { return impl_->p; }

EvalResult CocoEval::summarize() {
    Impl & m = *impl_;
    VLLM_CHECK(!m.precision.empty(), "COCOeval: summarize() before accumulate()");
    const EvalParams & p = m.p;
    EvalResult r;
    std::string & text = r.summary;
    const bool kp = p.iou_type == IouType::Keypoints;
    const bool crowd = kp && p.flavor == Flavor::CrowdPose;
    auto S = [&](bool ap, double thr, const char * area, int64_t md) { return m.summarize_one(ap, thr, area, md, text); };
    const int64_t K_ = m.K(), A_ = m.A(), M_ = m.M(), R_ = m.R(), T_ = m.T();

    // per category: AP over iou thresholds and recall thresholds, all areas, the largest maxDets
    for (int64_t k = 0; k < K_; ++k) {
        double sum = 0;
        int64_t n = 0;
        for (int64_t t = 0; t < T_; ++t)
            for (int64_t rr = 0; rr < R_; ++rr) {
                const double v = m.precision[size_t((((t * R_ + rr) * K_ + k) * A_ + 0) * M_ + (M_ - 1))];
                if (v > -1) sum += v, ++n;
            }
        CategoryAp c;
        c.id = p.use_cats ? m.cat_ids[size_t(k)] : -1;
        if (const CocoCategory * cat = m.gt.find_category(c.id)) c.name = cat->name;
        c.ap = n ? sum / double(n) : -1;
        r.per_category.push_back(c);
    }
    // in the ground truth's category order
    std::vector<CategoryAp> ordered;
    for (const auto & cat : m.gt.categories)
        for (const auto & c : r.per_category)
            if (c.id == cat.id) ordered.push_back(c);
    if (p.use_cats) r.per_category = ordered;

    if (!kp) {
        const int64_t md2 = p.max_dets.size() > 2 ? p.max_dets[2] : p.max_dets.back();
        r.stats = {S(true, -1, "all", 100),          S(true, .5, "all", md2),
                   S(true, .75, "all", md2),         S(true, -1, "small", md2),
                   S(true, -1, "medium", md2),       S(true, -1, "large", md2),
                   S(false, -1, "all", p.max_dets[0]), S(false, -1, "all", p.max_dets.size() > 1 ? p.max_dets[1] : md2),
                   S(false, -1, "all", md2),         S(false, -1, "small", md2),
                   S(false, -1, "medium", md2),      S(false, -1, "large", md2)};
        r.stat_names = {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
    } else if (!crowd) {
        r.stats = {S(true, -1, "all", 20),     S(true, .5, "all", 20),     S(true, .75, "all", 20),
                   S(true, -1, "medium", 20),  S(true, -1, "large", 20),   S(false, -1, "all", 20),
                   S(false, .5, "all", 20),    S(false, .75, "all", 20),   S(false, -1, "medium", 20),
                   S(false, -1, "large", 20)};
        r.stat_names = {"AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"};
    } else {
        r.stats = {S(true, -1, "all", 20),  S(true, .5, "all", 20),  S(true, .75, "all", 20),
                   S(false, -1, "all", 20), S(false, .5, "all", 20), S(false, .75, "all", 20)};
        r.stat_names = {"AP", "AP50", "AP75", "AR", "AR50", "AR75", "AP_easy", "AP_medium", "AP_hard"};
        // xtcocotools' get_type_result: re-evaluate on the images of each crowd-index band; the mean of the whole
        // precision[:, :, :, 0, :] (-1 entries included), rounded to 4 decimals
        std::vector<int64_t> bands[3];
        for (const auto & im : m.gt.images) {
            VLLM_CHECK(im.has_crowd_index, m.gt.source, ": image ", im.id,
                       " has no crowdIndex (CrowdPose scoring splits images by it)");
            bands[im.crowd_index < 0.2 ? 0 : im.crowd_index < 0.8 ? 1 : 2].push_back(im.id);
        }
        const char * names[3] = {"easy", "medium", "hard"};
        Impl sub(m.gt, m.dt, p, m.threads);
        sub.cat_ids = m.cat_ids;
        for (int band = 0; band < 3; ++band) {
            sub.evaluate_ids(bands[band]);
            sub.accumulate();
            double sum = 0;
            const int64_t n = T_ * R_ * K_ * M_;
            for (int64_t t = 0; t < T_; ++t)
                for (int64_t rr = 0; rr < R_; ++rr)
                    for (int64_t k = 0; k < K_; ++k)
                        for (int64_t mm = 0; mm < M_; ++mm)
                            sum += sub.precision[size_t((((t * R_ + rr) * K_ + k) * A_ + 0) * M_ + mm)];
            const double v = std::nearbyint(sum / double(n) * 1e4) / 1e4;
            r.stats.push_back(v);
            text += fmt(" %-18s %s @[ IoU=%-9s | type=%6s | maxDets=%3d ] = %0.3f\n", "Average Precision", "(AP)",
                        fmt("%0.2f:%0.2f", p.iou_thrs.front(), p.iou_thrs.back()).c_str(), names[band], 20, v);
        }
    }
    r.images = int64_t(p.img_ids.size());
    for (const auto & b : m.gts) r.ground_truth += int64_t(b.size());
    for (const auto & b : m.dts) r.detections += int64_t(b.size());
    return r;
}

EvalResult evaluate_coco(const CocoDataset & gt, const std::vector<CocoAnnotation> & dt, IouType t, Flavor f,
                         int threads) {
    CocoEval e(gt, dt, EvalParams::defaults(t, f), threads);
    e.evaluate();
    e.accumulate();
    return e.summarize();
}

}  // namespace visionllm::eval
