// Helpers shared by the test binaries.
#pragma once

#include <string>

namespace visionllm::test {

// a fresh directory under $TMPDIR, removed with its contents when the object dies
class TempDir {
public:
    explicit TempDir(const std::string & tag);
    ~TempDir();
    TempDir(const TempDir &) = delete;
    TempDir & operator=(const TempDir &) = delete;
    const std::string & path() const { return path_; }
    std::string file(const std::string & name) const { return path_ + "/" + name; }

private:
    std::string path_;
};

std::string source_dir();
std::string golden_dir(const std::string & component);  // tests/data/golden/<component>
std::string bin_path(const std::string & tool);           // build/bin/<tool>
std::string python_path();                                // the venv's Python the build was configured with
// ../shared next to the project root, or "" when absent (tests then skip)
std::string shared_dir();

std::string read_file(const std::string & path);
void write_file(const std::string & path, const std::string & bytes);
void copy_file(const std::string & from, const std::string & to);

// runs a shell command, capturing stdout and stderr together; returns the exit code
int run(const std::string & cmd, std::string * output);

// the exception message of `fn`, or "" if it did not throw visionllm::Error
template <class F>
std::string error_of(F && fn);

}  // namespace visionllm::test

#include "visionllm/error.h"

template <class F>
std::string visionllm::test::error_of(F && fn) {
    try {
        fn();
    } catch (const visionllm::Error & e) {
        return e.what();
    }
    return "";
}
