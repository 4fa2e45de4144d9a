// visionllm: the one exception type. Every message names the file, tensor,
// key or argument at fault, so a user can act on it without a debugger.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace visionllm {

class Error : public std::runtime_error {
public:
    explicit Error(const std::string & msg) : std::runtime_error(msg) {}
};

namespace detail {
template <class... Args>
std::string concat(const Args &... args) {
    std::ostringstream ss;
    (ss << ... << args);
    return ss.str();
}
}  // namespace detail

// throws visionllm::Error with the concatenation of its arguments
template <class... Args>
[[noreturn]] void fail(const Args &... args) {
    throw Error(detail::concat(args...));
}

}  // namespace visionllm

#define VLLM_CHECK(cond, ...)                      \
    do {                                           \
        if (!(cond)) ::visionllm::fail(__VA_ARGS__); \
    } while (0)
