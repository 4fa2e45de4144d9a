#include "common/test_util.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <ftw.h>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace visionllm::test {

TempDir::TempDir(const std::string & tag) {
    const char * tmp = std::getenv("TMPDIR");
    std::string tmpl = std::string(tmp ? tmp : "/tmp") + "/visionllm-" + tag + "-XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + tmpl);
    path_ = tmpl;
}

// std::filesystem is avoided on purpose: the torch wheel's libtorch.so exports
// its own std::filesystem symbols, and calls bind to them and crash.
TempDir::~TempDir() {
    nftw(
        path_.c_str(), [](const char * p, const struct stat *, int, struct FTW *) { return ::remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
}

std::string source_dir() { return VISIONLLM_SOURCE_DIR; }
std::string golden_dir(const std::string & component) { return source_dir() + "/tests/data/golden/" + component; }
std::string bin_path(const std::string & tool) { return std::string(VISIONLLM_BIN_DIR) + "/" + tool; }
std::string python_path() { return VISIONLLM_PYTHON; }

std::string shared_dir() {
    std::string d = source_dir() + "/../shared";
    struct stat st {};
    return stat(d.c_str(), &st) == 0 && S_ISDIR(st.st_mode) ? d : "";
}

std::string read_file(const std::string & path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void write_file(const std::string & path, const std::string & bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    if (!out) throw std::runtime_error("cannot write " + path);
}

void copy_file(const std::string & from, const std::string & to) { write_file(to, read_file(from)); }

int run(const std::string & cmd, std::string * output) {
    std::string full = cmd + " 2>&1";
    FILE * p = popen(full.c_str(), "r");
    if (p == nullptr) return -1;
    std::array<char, 4096> buf{};
    std::string out;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
    int status = pclose(p);
    if (output != nullptr) *output = out;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace visionllm::test
