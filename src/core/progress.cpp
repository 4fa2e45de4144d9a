#include "core/progress.h"

#include <unistd.h>

#include <cstdio>

namespace visionllm {

Progress::Progress(std::string label, uint64_t total, bool enabled, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), enabled_(enabled),
      tty_(isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()) {}

Progress::~Progress() { done(); }

void Progress::add(uint64_t n) {
    current_ += n;
    draw(false);
}

void Progress::done() {
    if (finished_) return;
    finished_ = true;
    current_ = total_;
    if (!tty_ && last_pct_ == 100) return;  // the 100% line is out already
    draw(true);
}

void Progress::draw(bool final) {
    if (!enabled_ || total_ == 0) return;
    int pct = int(100.0 * double(current_) / double(total_));
    if (pct > 100) pct = 100;
    if (!final && (pct == last_pct_ || (!tty_ && pct / 10 == last_pct_ / 10))) return;
    last_pct_ = pct;
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (unit_ == "B") {
        std::fprintf(stderr, "%s%s: %3d%% (%.2f / %.2f GB, %.1f s)%s", tty_ ? "\r" : "", label_.c_str(), pct,
                     double(current_) / 1e9, double(total_) / 1e9, secs, (final || !tty_) ? "\n" : "");
    } else {
        std::fprintf(stderr, "%s%s: %3d%% (%llu / %llu%s%s, %.1f s)%s", tty_ ? "\r" : "", label_.c_str(), pct,
                     (unsigned long long) current_, (unsigned long long) total_, unit_.empty() ? "" : " ",
                     unit_.c_str(), secs, (final || !tty_) ? "\n" : "");
    }
    std::fflush(stderr);
}

}  // namespace visionllm
