// Progress for long work (writing checkpoints, loading, later diffusion steps
// and dataset evaluation): one updating line on stderr when it is a terminal,
// a line per 10% otherwise. Silent when disabled.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace visionllm {

class Progress {
public:
    Progress(std::string label, uint64_t total, bool enabled = true, std::string unit = "");
    ~Progress();
    void add(uint64_t n);
    void done();

private:
    void draw(bool final);
    std::string label_, unit_;
    uint64_t total_, current_ = 0;
    bool enabled_, tty_, finished_ = false;
    int last_pct_ = -1;
    std::chrono::steady_clock::time_point start_;
};

}  // namespace visionllm
