// Helpers for tests that run the command-line tools as a user does.
#pragma once

#include <gtest/gtest.h>

#include <sstream>
#include <string>
#include <vector>

#include "common/test_util.h"

namespace visionllm::test {

inline std::string vl() { return bin_path("visionllm"); }

// stdout only (stderr discarded), with the exit code checked
inline std::string stdout_of(const std::string & cmd, int want_rc = 0) {
    std::string out;
    const int rc = run("(" + cmd + " 2>/dev/null)", &out);  // run() appends 2>&1 outside the subshell
    EXPECT_EQ(rc, want_rc) << cmd << "\n" << out;
    return out;
}

// stdout and stderr together
inline std::string all_of(const std::string & cmd, int want_rc) {
    std::string out;
    const int rc = run(cmd, &out);
    EXPECT_EQ(rc, want_rc) << cmd << "\n" << out;
    return out;
}

// the integers of a line such as "1 2 3"
inline std::vector<int64_t> ints(const std::string & line) {
    std::vector<int64_t> v;
    std::istringstream ss(line);
    for (int64_t x; ss >> x;) v.push_back(x);
    return v;
}

// a shell single-quoted word
inline std::string quote(const std::string & s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

}  // namespace visionllm::test
