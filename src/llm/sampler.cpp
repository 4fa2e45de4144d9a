#include "llm/sampler.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <unordered_set>

#include "visionllm/error.h"

namespace visionllm::llm {

namespace {
constexpr float k_neg_inf = -std::numeric_limits<float>::infinity();

// softmax over the finite scores, in double
std::vector<double> softmax(const std::vector<float> & s) {
    const float mx = *std::max_element(s.begin(), s.end());
    if (std::isinf(mx) && mx < 0) fail("sampler: every token's logit is -inf");
    std::vector<double> p(s.size());
    double sum = 0;
    for (size_t i = 0; i < s.size(); ++i) sum += (p[i] = std::isinf(s[i]) ? 0.0 : std::exp(double(s[i]) - mx));
    for (double & v : p) v /= sum;
    return p;
}
}  // namespace

Sampler::Sampler(const SamplerParams & p) : p_(p), rng_(p.seed) {
    VLLM_CHECK(p.repetition_penalty > 0, "--repeat-penalty must be positive, got ", p.repetition_penalty);
    VLLM_CHECK(p.top_p > 0, "--top-p must be in (0, 1], got ", p.top_p);
    VLLM_CHECK(p.min_p < 1, "--min-p must be below 1, got ", p.min_p);
}

std::vector<float> Sampler::process(const at::Tensor & logits, const std::vector<int64_t> & history) const {
    at::Tensor l = logits.to(at::kFloat).contiguous().view(-1);
    VLLM_CHECK(l.numel() > 0, "sampler: empty logits");
    std::vector<float> s(l.data_ptr<float>(), l.data_ptr<float>() + l.numel());
    const int64_t n = int64_t(s.size());

    if (p_.repetition_penalty != 1.0f) {  // RepetitionPenaltyLogitsProcessor: once per distinct seen token
        std::unordered_set<int64_t> seen(history.begin(), history.end());
        for (int64_t id : seen) {
            if (id < 0 || id >= n) continue;
            float & v = s[size_t(id)];
            v = v < 0 ? v * p_.repetition_penalty : v / p_.repetition_penalty;
        }
    }
    if (p_.temperature <= 0) return s;  // greedy: only the penalty matters
    if (p_.temperature != 1.0f) {
        for (float & v : s) v /= p_.temperature;
    }
    if (p_.top_k > 0 && p_.top_k < n) {  // TopKLogitsWarper: below the k-th largest goes (ties kept)
        std::vector<float> sorted = s;
        std::nth_element(sorted.begin(), sorted.begin() + (p_.top_k - 1), sorted.end(), std::greater<float>());
        const float kth = sorted[size_t(p_.top_k - 1)];
        for (float & v : s) {
            if (v < kth) v = k_neg_inf;
        }
    }
    if (p_.top_p < 1.0f) {  // TopPLogitsWarper: ascending order, drop while cumulative <= 1 - top_p, keep the best
        std::vector<double> prob = softmax(s);
        std::vector<int64_t> order(static_cast<size_t>(n));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[size_t(a)] < s[size_t(b)]; });
        double cum = 0;
        for (int64_t k = 0; k + 1 < n; ++k) {
            cum += prob[size_t(order[size_t(k)])];
            if (cum <= 1.0 - double(p_.top_p)) s[size_t(order[size_t(k)])] = k_neg_inf;
        }
    }
    if (p_.min_p > 0) {  // MinPLogitsWarper: drop tokens below min_p x the top probability
        std::vector<double> prob = softmax(s);
        const double cut = double(p_.min_p) * *std::max_element(prob.begin(), prob.end());
        for (int64_t i = 0; i < n; ++i) {
            if (prob[size_t(i)] < cut) s[size_t(i)] = k_neg_inf;
        }
    }
    return s;
}

int64_t Sampler::sample(const at::Tensor & logits, const std::vector<int64_t> & history) {
    const std::vector<float> s = process(logits, history);
    if (p_.temperature <= 0) return int64_t(std::max_element(s.begin(), s.end()) - s.begin());
    const std::vector<double> prob = softmax(s);
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    double cum = 0;
    int64_t last = 0;
    for (size_t i = 0; i < prob.size(); ++i) {
        if (prob[i] == 0) continue;
        last = int64_t(i);
        cum += prob[i];
        if (u < cum) return int64_t(i);
    }
    return last;  // rounding left u above the total
}

}  // namespace visionllm::llm
