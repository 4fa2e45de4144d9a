// ms_deform_attn: the CPU kernel, and the CUDA kernel when a GPU is present, against two references of
// decoders_det_pose.md §2: a naive scalar one written here from §2.2 (plain loops, fp64), and PyTorch's
// algorithm of §2.3 (transformers 4.40.2 `multi_scale_deformable_attention`) built from at::grid_sampler_2d
// (bilinear, zeros, align_corners=false), which is first checked against the naive one. Random shapes with
// non-square, 1x1 and 1xW levels, locations at the edges and far outside, f32/bf16/f16, non-finite
// locations, the realistic Grounding DINO encoder size, and the argument checks.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <utility>
#include <vector>

#include "common/test_util.h"
#include "kernels/ops.h"
#include "visionllm/device.h"

namespace {

namespace k = visionllm::kernels;
using Levels = std::vector<std::pair<int64_t, int64_t>>;  // (H, W)

struct Problem {
    at::Tensor value;   // [N, S, M, D]
    at::Tensor shapes;  // [L, 2] int64
    at::Tensor starts;  // [L] int64
    at::Tensor loc;     // [N, Lq, M, L, P, 2]
    at::Tensor aw;      // [N, Lq, M, L, P]
    Levels levels;
};

at::Tensor run(const Problem & p) { return k::ms_deform_attn(p.value, p.shapes, p.starts, p.loc, p.aw); }

// §2.2 literally, in fp64: out[n,q,m*D+d] = sum_l sum_p w * bilinear(x = loc_x*W - 0.5, y = loc_y*H - 0.5), each
// of the four corners outside the level contributing 0; a non-finite location contributes 0 (the original CUDA
// kernel's choice, documented in kernels/cpu/ms_deform_attn.cpp)
at::Tensor naive(const Problem & pr) {
    const at::Tensor v = pr.value.to(at::kDouble).contiguous();
    const at::Tensor loc = pr.loc.to(at::kDouble).contiguous(), aw = pr.aw.to(at::kDouble).contiguous();
    const int64_t N = v.size(0), M = v.size(2), D = v.size(3);
    const int64_t Lq = loc.size(1), L = loc.size(3), P = loc.size(4);
    auto va = v.accessor<double, 4>();
    auto la = loc.accessor<double, 6>();
    auto wa = aw.accessor<double, 5>();
    at::Tensor out = at::zeros({N, Lq, M * D}, at::kDouble);
    auto oa = out.accessor<double, 3>();
    for (int64_t n = 0; n < N; ++n)
        for (int64_t q = 0; q < Lq; ++q)
            for (int64_t m = 0; m < M; ++m)
                for (int64_t d = 0; d < D; ++d) {
                    double acc = 0;
                    int64_t start = 0;
                    for (int64_t l = 0; l < L; ++l) {
                        const int64_t H = pr.levels[l].first, W = pr.levels[l].second;
                        for (int64_t p = 0; p < P; ++p) {
                            const double x = la[n][q][m][l][p][0] * double(W) - 0.5;
                            const double y = la[n][q][m][l][p][1] * double(H) - 0.5;
                            if (!std::isfinite(x) || !std::isfinite(y)) continue;
                            const double x0 = std::floor(x), y0 = std::floor(y);
                            const double lx = x - x0, ly = y - y0;
                            const double cw[2][2] = {{(1 - ly) * (1 - lx), (1 - ly) * lx}, {ly * (1 - lx), ly * lx}};
                            for (int dy = 0; dy < 2; ++dy)
                                for (int dx = 0; dx < 2; ++dx) {
                                    const double yy = y0 + dy, xx = x0 + dx;
                                    if (yy < 0 || yy > double(H - 1) || xx < 0 || xx > double(W - 1)) continue;
                                    acc += wa[n][q][m][l][p] * cw[dy][dx] *
                                           va[n][start + int64_t(yy) * W + int64_t(xx)][m][d];
                                }
                        }
                        start += H * W;
                    }
                    oa[n][q][m * D + d] = acc;
                }
    return out;
}

// §2.3, the PyTorch reference (transformers 4.40.2 multi_scale_deformable_attention), in the inputs' dtype
at::Tensor grid_sample_ref(const at::Tensor & value, const Levels & levels, const at::Tensor & loc,
                           const at::Tensor & aw) {
    const int64_t N = value.size(0), M = value.size(2), D = value.size(3);
    const int64_t Lq = loc.size(1), L = loc.size(3), P = loc.size(4);
    std::vector<int64_t> sizes;
    for (const auto & [H, W] : levels) sizes.push_back(H * W);
    const std::vector<at::Tensor> vl = value.split_with_sizes(sizes, 1);
    const at::Tensor grids = 2 * loc - 1;
    std::vector<at::Tensor> sampled;
    for (int64_t l = 0; l < L; ++l) {
        const at::Tensor v = vl[l].flatten(2).transpose(1, 2).reshape({N * M, D, levels[l].first, levels[l].second});
        const at::Tensor g = grids.select(3, l).transpose(1, 2).flatten(0, 1);  // [N*M, Lq, P, 2]
        sampled.push_back(at::grid_sampler_2d(v, g, /*bilinear*/ 0, /*zeros*/ 0, /*align_corners*/ false));
    }
    const at::Tensor w = aw.transpose(1, 2).reshape({N * M, 1, Lq, L * P});
    return (at::stack(sampled, -2).flatten(-2) * w).sum(-1).view({N, M * D, Lq}).transpose(1, 2).contiguous();
}

double max_abs(const at::Tensor & t) { return t.numel() == 0 ? 0.0 : t.abs().max().item<double>(); }
double max_diff(const at::Tensor & a, const at::Tensor & b) {
    return a.numel() == 0 ? 0.0 : (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

// locations: mostly uniform in [-0.2, 1.2], the rest exact edges (0, 1, the first and last pixel centres, pixel
// borders k/size, x = -1 exactly, x = size exactly) and far outside (-5, 7)
at::Tensor make_locations(int64_t N, int64_t Lq, int64_t M, const Levels & levels, int64_t P, std::mt19937 & rng) {
    const int64_t L = int64_t(levels.size());
    at::Tensor loc = at::empty({N, Lq, M, L, P, 2}, at::kFloat);
    float * p = loc.data_ptr<float>();
    std::uniform_real_distribution<float> uni(-0.2f, 1.2f);
    std::uniform_int_distribution<int> kind(0, 21);
    for (int64_t i = 0; i < loc.numel(); ++i) {
        const int64_t c = i % 2, l = (i / (2 * P)) % L;
        const float size = float(c == 0 ? levels[l].second : levels[l].first);
        float v = 0;
        switch (kind(rng)) {
            case 12: v = 0.f; break;
            case 13: v = 1.f; break;
            case 14: v = 0.5f / size; break;
            case 15: v = (size - 0.5f) / size; break;
            case 16: v = float(std::uniform_int_distribution<int>(0, int(size))(rng)) / size; break;
            case 17: v = -0.5f / size; break;
            case 18: v = (size + 0.5f) / size; break;
            case 19: v = -5.f; break;
            case 20: v = 7.f; break;
            default: v = uni(rng);
        }
        p[i] = v;
    }
    return loc;
}

Problem make_problem(int64_t N, int64_t M, int64_t D, const Levels & levels, int64_t P, int64_t Lq, std::mt19937 & rng,
                     at::ScalarType vt = at::kFloat, at::ScalarType lt = at::kFloat) {
    Problem pr;
    pr.levels = levels;
    const int64_t L = int64_t(levels.size());
    std::vector<int64_t> hw, st;
    int64_t S = 0;
    for (const auto & [H, W] : levels) {
        hw.push_back(H);
        hw.push_back(W);
        st.push_back(S);
        S += H * W;
    }
    pr.shapes = at::tensor(hw, at::kLong).view({L, 2});
    pr.starts = at::tensor(st, at::kLong);
    pr.value = (at::randn({N, S, M, D}) * 2).to(vt);
    pr.loc = make_locations(N, Lq, M, levels, P, rng).to(lt);
    pr.aw = at::softmax(at::randn({N, Lq, M, L * P}), -1).view({N, Lq, M, L, P}).to(lt);
    return pr;
}

std::string describe(const Problem & p) {
    std::ostringstream s;
    s << "value " << p.value.sizes() << " " << p.value.scalar_type() << ", locations " << p.loc.sizes() << " "
      << p.loc.scalar_type() << ", levels";
    for (const auto & [H, W] : p.levels) s << " " << H << "x" << W;
    return s.str();
}

// random problems over the brief's matrix; every value of each axis appears
std::vector<Problem> random_problems(std::mt19937 & rng, int count) {
    const Levels pool = {{1, 1}, {1, 7}, {5, 1}, {3, 5}, {7, 4}, {2, 9}, {6, 6}, {4, 13}, {1, 2}, {9, 3}};
    const int64_t Ns[] = {1, 2}, Ms[] = {1, 2, 3, 8}, Ds[] = {1, 4, 32, 33}, Ls[] = {1, 2, 4}, Ps[] = {1, 3, 4},
                  Lqs[] = {1, 7, 50};
    std::vector<Problem> out;
    for (int i = 0; i < count; ++i) {
        auto pick = [&](const int64_t * a, int n) {
            return a[(i + std::uniform_int_distribution<int>(0, n - 1)(rng)) % n];
        };
        const int64_t N = pick(Ns, 2), M = Ms[i % 4], D = Ds[(i / 4) % 4], L = Ls[i % 3], P = pick(Ps, 3),
                      Lq = pick(Lqs, 3);
        Levels lv;
        for (int64_t l = 0; l < L; ++l) lv.push_back(pool[std::uniform_int_distribution<int>(0, 9)(rng)]);
        if (i % 5 == 0) lv[0] = {1, 1};
        if (i % 5 == 1) lv[L - 1] = {1, 11};
        out.push_back(make_problem(N, M, D, lv, P, Lq, rng));
    }
    return out;
}

}  // namespace

TEST(MsDeformAttnKernel, GridSampleReferenceMatchesNaive) {
    // the two references agree in fp64 (so either can stand for §2.2)
    std::mt19937 rng(11);
    at::manual_seed(11);
    for (const Problem & p : random_problems(rng, 24)) {
        const at::Tensor a = naive(p);
        const at::Tensor b = grid_sample_ref(p.value.to(at::kDouble), p.levels, p.loc.to(at::kDouble),
                                             p.aw.to(at::kDouble));
        EXPECT_LT(max_diff(a, b), 1e-12 * max_abs(p.value)) << describe(p);
    }
}

TEST(MsDeformAttnKernel, CpuMatchesNaiveFp32) {
    std::mt19937 rng(1);
    at::manual_seed(1);
    double worst = 0;
    for (const Problem & p : random_problems(rng, 60)) {
        const at::Tensor got = run(p);
        const std::vector<int64_t> want_sizes = {p.value.size(0), p.loc.size(1), p.value.size(2) * p.value.size(3)};
        ASSERT_EQ(got.sizes(), want_sizes);
        ASSERT_EQ(got.scalar_type(), at::kFloat);
        ASSERT_TRUE(got.is_contiguous());
        const double rel = max_diff(got, naive(p)) / max_abs(p.value);
        worst = std::max(worst, rel);
        EXPECT_LT(rel, 1e-5) << describe(p);
    }
    std::printf("fp32 CPU vs naive: worst |diff| / max|value| = %.3g\n", worst);
}

TEST(MsDeformAttnKernel, CpuHalfPrecision) {
    // bf16/f16 value (locations and weights f32 or the value's dtype), fp32 accumulation, one rounding: against the
    // naive reference over the same rounded inputs
    std::mt19937 rng(2);
    at::manual_seed(2);
    const Levels lv = {{6, 9}, {3, 5}, {1, 1}, {2, 3}};
    double worst[2] = {0, 0};
    for (at::ScalarType vt : {at::kBFloat16, at::kHalf})
        for (at::ScalarType lt : {at::kFloat, vt})
            for (int64_t D : {1, 32, 33}) {
                const Problem p = make_problem(2, 3, D, lv, 3, 17, rng, vt, lt);
                const at::Tensor got = run(p);
                ASSERT_EQ(got.scalar_type(), vt);
                const double tol = vt == at::kBFloat16 ? 4e-3 : 1e-3;  // one output rounding (2^-9, 2^-11)
                const double rel = max_diff(got, naive(p)) / max_abs(p.value);
                EXPECT_LT(rel, tol) << describe(p);
                worst[vt == at::kHalf] = std::max(worst[vt == at::kHalf], rel);
            }
    std::printf("bf16 / f16 CPU vs naive: worst |diff| / max|value| = %.3g / %.3g\n", worst[0], worst[1]);
}

TEST(MsDeformAttnKernel, NonFiniteLocationsContributeNothing) {
    // NaN / inf locations are skipped (the original CUDA kernel); PyTorch's grid_sample path gives NaN instead
    std::mt19937 rng(3);
    at::manual_seed(3);
    Problem p = make_problem(1, 2, 4, {{3, 4}, {2, 2}}, 3, 5, rng);
    const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
    auto l = p.loc.accessor<float, 6>();
    l[0][0][0][0][0][0] = nan;
    l[0][1][1][1][2][1] = inf;
    l[0][2][0][0][1][0] = -inf;
    l[0][3][1][0][0][0] = inf;
    l[0][3][1][0][0][1] = nan;
    const at::Tensor got = run(p);
    EXPECT_TRUE(at::isfinite(got).all().item<bool>());
    EXPECT_LT(max_diff(got, naive(p)) / max_abs(p.value), 1e-5);
    // the grid_sample reference: NaN for exactly those (query, head)s
    const at::Tensor ref = grid_sample_ref(p.value, p.levels, p.loc, p.aw);
    const at::Tensor nan_rows = at::isnan(ref).view({1, 5, 2, 4}).any(-1);
    EXPECT_TRUE(nan_rows[0][0][0].item<bool>() && nan_rows[0][1][1].item<bool>() && nan_rows[0][2][0].item<bool>() &&
                nan_rows[0][3][1].item<bool>());
    EXPECT_EQ(nan_rows.sum().item<int64_t>(), 4);
    // elsewhere they agree
    const at::Tensor ok = ~at::isnan(ref);
    EXPECT_LT(max_diff(got.masked_select(ok), ref.masked_select(ok)) / max_abs(p.value), 1e-5);
    // far outside but finite (any size) is zero in both
    Problem far = p;
    far.loc = at::full_like(p.loc, 1e30f);
    EXPECT_EQ(max_abs(run(far)), 0.0);
    EXPECT_EQ(max_abs(grid_sample_ref(far.value, far.levels, far.loc, far.aw)), 0.0);
}

TEST(MsDeformAttnKernel, NonContiguousAndEmptyInputs) {
    std::mt19937 rng(4);
    at::manual_seed(4);
    Problem p = make_problem(2, 2, 5, {{4, 3}, {1, 6}}, 2, 9, rng);
    const at::Tensor want = naive(p);
    Problem q = p;
    q.value = p.value.transpose(0, 1).contiguous().transpose(0, 1);  // [N, S, M, D] with S outermost in memory
    q.loc = p.loc.permute({0, 2, 1, 3, 4, 5}).contiguous().permute({0, 2, 1, 3, 4, 5});
    q.aw = at::cat({p.aw, p.aw}, 4).slice(4, 0, 2);
    ASSERT_FALSE(q.value.is_contiguous() || q.loc.is_contiguous() || q.aw.is_contiguous());
    EXPECT_LT(max_diff(run(q), want) / max_abs(p.value), 1e-5);
    // no queries; no points (all zeros)
    Problem e = make_problem(2, 2, 5, {{4, 3}}, 2, 0, rng);
    EXPECT_EQ(run(e).sizes(), (std::vector<int64_t>{2, 0, 10}));
    Problem z = make_problem(1, 2, 5, {{4, 3}}, 0, 3, rng);
    const at::Tensor zo = run(z);
    EXPECT_EQ(zo.sizes(), (std::vector<int64_t>{1, 3, 10}));
    EXPECT_EQ(max_abs(zo), 0.0);
}

TEST(MsDeformAttnKernel, RealisticEncoderSize) {
    // Grounding DINO's encoder on an 800x1333 image: 4 levels, Lq = S = 22223, M = 8, D = 32, P = 4; locations as
    // the encoder makes them (each query's pixel centre + offset / (W_l, H_l)); checked against the grid_sample
    // reference (fp64) on a subset of queries
    const Levels levels = {{100, 167}, {50, 84}, {25, 42}, {13, 21}};
    const int64_t M = 8, D = 32, L = 4, P = 4;
    std::vector<float> ref;  // [S, 2] reference points
    for (const auto & [H, W] : levels)
        for (int64_t i = 0; i < H; ++i)
            for (int64_t j = 0; j < W; ++j) {
                ref.push_back((float(j) + 0.5f) / float(W));
                ref.push_back((float(i) + 0.5f) / float(H));
            }
    const int64_t S = int64_t(ref.size()) / 2, Lq = S;
    ASSERT_EQ(S, 22223);
    at::manual_seed(5);
    Problem p;
    p.levels = levels;
    p.shapes = at::tensor(std::vector<int64_t>{100, 167, 50, 84, 25, 42, 13, 21}, at::kLong).view({4, 2});
    p.starts = at::tensor(std::vector<int64_t>{0, 16700, 20900, 21950}, at::kLong);
    p.value = at::randn({1, S, M, D});
    const at::Tensor refs = at::from_blob(ref.data(), {1, Lq, 1, 1, 1, 2}, at::kFloat).clone();
    const at::Tensor norm = at::tensor(std::vector<float>{167, 100, 84, 50, 42, 25, 21, 13}).view({1, 1, 1, L, 1, 2});
    p.loc = (refs + at::randn({1, Lq, M, L, P, 2}) * 2 / norm).contiguous();
    p.aw = at::softmax(at::randn({1, Lq, M, L * P}), -1).view({1, Lq, M, L, P});
    const at::Tensor got = run(p);
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, Lq, M * D}));
    const at::Tensor idx = at::randperm(Lq).slice(0, 0, 400);
    const at::Tensor want = grid_sample_ref(p.value.to(at::kDouble), levels, p.loc.index_select(1, idx).to(at::kDouble),
                                            p.aw.index_select(1, idx).to(at::kDouble));
    const double rel = max_diff(got.index_select(1, idx), want) / max_abs(p.value);
    EXPECT_LT(rel, 1e-5);
    std::printf("encoder size, 400 queries: |CPU - grid_sample fp64| / max|value| = %.3g\n", rel);
    if (visionllm::cuda_usable()) {
        const at::Tensor gpu = k::ms_deform_attn(p.value.cuda(), p.shapes, p.starts, p.loc.cuda(), p.aw.cuda()).cpu();
        EXPECT_LT(max_diff(gpu, got) / max_abs(p.value), 1e-5);
    }
}

TEST(MsDeformAttnKernel, BadArgumentsAreErrors) {
    using visionllm::test::error_of;
    std::mt19937 rng(6);
    const Problem good = make_problem(2, 2, 4, {{3, 4}, {2, 2}}, 3, 5, rng);
    EXPECT_EQ(error_of([&] { run(good); }), "");
    // each corruption, and a word its message must name
    struct Bad {
        const char * what;
        std::function<void(Problem &)> corrupt;
    };
    const std::vector<Bad> bad = {
        {"value", [](Problem & p) { p.value = at::Tensor(); }},
        {"spatial_shapes", [](Problem & p) { p.shapes = at::Tensor(); }},
        {"level_start_index", [](Problem & p) { p.starts = at::Tensor(); }},
        {"sampling_locations", [](Problem & p) { p.loc = at::Tensor(); }},
        {"attention_weights", [](Problem & p) { p.aw = at::Tensor(); }},
        {"value", [](Problem & p) { p.value = p.value.to(at::kDouble); }},
        {"value", [](Problem & p) { p.value = p.value.to(at::kInt); }},
        {"value", [](Problem & p) { p.value = p.value.flatten(2); }},
        {"D = 0", [](Problem & p) { p.value = p.value.slice(3, 0, 0); }},
        {"spatial_shapes", [](Problem & p) { p.shapes = p.shapes.to(at::kInt); }},
        {"spatial_shapes", [](Problem & p) { p.shapes = p.shapes.flatten(); }},
        {"spatial_shapes", [](Problem & p) { p.shapes = at::zeros({0, 2}, at::kLong); }},
        {"level_start_index", [](Problem & p) { p.starts = p.starts.to(at::kInt); }},
        {"level_start_index", [](Problem & p) { p.starts = p.starts.slice(0, 0, 1); }},
        {"sampling_locations", [](Problem & p) { p.loc = p.loc.slice(2, 0, 1); }},
        {"sampling_locations", [](Problem & p) { p.loc = p.loc.slice(0, 0, 1); }},
        {"sampling_locations", [](Problem & p) { p.loc = p.loc.slice(3, 0, 1); }},
        {"sampling_locations", [](Problem & p) { p.loc = p.loc.flatten(4); }},
        {"sampling_locations", [](Problem & p) { p.loc = p.loc.to(at::kDouble); }},
        {"sampling_locations", [](Problem & p) { p.loc = p.loc.to(at::kBFloat16); }},  // value is f32
        {"attention_weights", [](Problem & p) { p.aw = p.aw.slice(4, 0, 2); }},
        {"attention_weights", [](Problem & p) { p.aw = p.aw.slice(1, 0, 2); }},
        {"attention_weights", [](Problem & p) { p.aw = p.aw.to(at::kHalf); }},
        {"spatial_shapes", [](Problem & p) { p.shapes = at::tensor(std::vector<int64_t>{3, 4, 0, 2}).view({2, 2}); }},
        {"spatial_shapes", [](Problem & p) { p.shapes = at::tensor(std::vector<int64_t>{3, 4, 2, -2}).view({2, 2}); }},
        {"spatial_shapes", [](Problem & p) { p.shapes = at::tensor(std::vector<int64_t>{3, 4, 2, 1}).view({2, 2}); }},
        {"spatial_shapes", [](Problem & p) { p.shapes = at::tensor(std::vector<int64_t>{4, 4, 2, 2}).view({2, 2}); }},
        {"spatial_shapes",
         [](Problem & p) {
             p.shapes = at::tensor(std::vector<int64_t>{int64_t(1) << 40, int64_t(1) << 40, 2, 2}).view({2, 2});
         }},
        {"level_start_index", [](Problem & p) { p.starts = at::tensor(std::vector<int64_t>{0, 11}); }},
        {"level_start_index", [](Problem & p) { p.starts = at::tensor(std::vector<int64_t>{1, 12}); }},
    };
    for (const Bad & b : bad) {
        Problem p = good;
        b.corrupt(p);
        const std::string e = error_of([&] { run(p); });
        EXPECT_EQ(e.rfind("ms_deform_attn: ", 0), 0u) << b.what << ": " << e;
        EXPECT_NE(e.find(b.what), std::string::npos) << b.what << ": " << e;
    }
    // value, sampling_locations and attention_weights on one device (a meta tensor stands for another device here)
    {
        Problem m = good;
        m.value = at::empty(good.value.sizes(), good.value.options().device(at::kMeta));
        std::string e = error_of([&] { run(m); });
        EXPECT_EQ(e.rfind("ms_deform_attn: sampling_locations is on cpu but value is on meta", 0), 0u) << e;
        m.loc = at::empty(good.loc.sizes(), good.loc.options().device(at::kMeta));
        e = error_of([&] { run(m); });
        EXPECT_EQ(e.rfind("ms_deform_attn: attention_weights is on cpu but value is on meta", 0), 0u) << e;
        m.aw = at::empty(good.aw.sizes(), good.aw.options().device(at::kMeta));
        e = error_of([&] { run(m); });
        EXPECT_NE(e.find("must be CPU tensors"), std::string::npos) << e;
    }
    // the backend entry points check too
    Problem p = good;
    p.starts = at::tensor(std::vector<int64_t>{0, 11});
    const std::string e = error_of([&] { k::cpu::ms_deform_attn(p.value, p.shapes, p.starts, p.loc, p.aw); });
    EXPECT_NE(e.find("level_start_index"), std::string::npos) << e;
}

TEST(MsDeformAttnKernel, CudaMatchesCpu) {
    if (!visionllm::cuda_usable()) GTEST_SKIP() << "no usable CUDA device";
    std::mt19937 rng(7);
    at::manual_seed(7);
    std::vector<Problem> problems = random_problems(rng, 60);
    const Levels lv = {{6, 9}, {3, 5}, {1, 1}, {2, 3}};
    for (at::ScalarType vt : {at::kBFloat16, at::kHalf})
        for (at::ScalarType lt : {at::kFloat, vt})
            for (int64_t D : {1, 32, 33}) problems.push_back(make_problem(2, 3, D, lv, 3, 17, rng, vt, lt));
    {  // non-finite locations
        Problem p = make_problem(1, 2, 4, {{3, 4}, {2, 2}}, 3, 5, rng);
        p.loc[0][0][0][0][0][0] = std::numeric_limits<float>::quiet_NaN();
        p.loc[0][1][1][1][2][1] = std::numeric_limits<float>::infinity();
        p.loc[0][2][0][0][1][0] = -std::numeric_limits<float>::infinity();
        problems.push_back(p);
    }
    for (size_t i = 0; i < problems.size(); ++i) {
        const Problem & p = problems[i];
        const at::Tensor cpu = run(p);
        // spatial_shapes / level_start_index on the host for half the cases, on the device for the others
        const bool dev_shapes = i % 2 == 1;
        const at::Tensor gpu_t = k::ms_deform_attn(p.value.cuda(), dev_shapes ? p.shapes.cuda() : p.shapes,
                                                   dev_shapes ? p.starts.cuda() : p.starts, p.loc.cuda(), p.aw.cuda());
        ASSERT_TRUE(gpu_t.is_cuda());
        const at::Tensor gpu = gpu_t.cpu();
        ASSERT_EQ(gpu.sizes(), cpu.sizes());
        ASSERT_EQ(gpu.scalar_type(), cpu.scalar_type());
        const at::ScalarType vt = p.value.scalar_type();
        const double tol = vt == at::kFloat ? 1e-5 : (vt == at::kBFloat16 ? 8e-3 : 2e-3);  // fp32 / 1-2 output ulp
        EXPECT_LT(max_diff(gpu, cpu) / max_abs(p.value), tol) << describe(p);
        EXPECT_LT(max_diff(gpu, naive(p)) / max_abs(p.value), tol) << describe(p);
    }
    // a device mismatch is an error naming the argument, not a crash
    const Problem & p = problems.front();
    const std::string e = visionllm::test::error_of(
        [&] { k::ms_deform_attn(p.value.cuda(), p.shapes, p.starts, p.loc, p.aw.cuda()); });
    EXPECT_NE(e.find("sampling_locations"), std::string::npos) << e;
}
