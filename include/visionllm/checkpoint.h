// Checkpoints: one file or a directory of shards (torch.save .bin or
// safetensors, with their index JSON). Tensor data is memory-mapped and handed
// out as zero-copy at::Tensor views; nothing is read until it is used.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "visionllm/tensor_info.h"

namespace visionllm {

namespace io {
class MappedFile;
}

// what a model expects to find: a name (relative to the view it is checked
// against) and a shape; optional entries (non-persistent buffers) may be absent
struct ExpectedTensor {
    std::string name;
    std::vector<int64_t> shape;
    bool optional = false;
};

struct KeyReport {
    struct Mismatch {
        std::string name;
        std::vector<int64_t> expected, found;
    };
    std::vector<std::string> missing;
    std::vector<std::string> unexpected;
    std::vector<Mismatch> mismatched;
    size_t expected_count = 0;
    size_t optional_absent = 0;  // optional entries (non-persistent buffers) not saved
    bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
    // human-readable lines, at most `limit` names per list (0: all)
    std::string to_string(size_t limit = 20) const;
};

class WeightView;

class WeightMap {
public:
    // `path`: a checkpoint file (.bin/.pt/.pth/.safetensors), an index JSON, or a
    // directory holding model.safetensors[.index.json] or pytorch_model.bin[.index.json]
    static WeightMap open(const std::string & path);

    bool contains(const std::string & name) const { return by_name_.count(name) != 0; }
    const TensorInfo & info(const std::string & name) const;
    // zero-copy CPU tensor over the mapped file (keeps the file mapped while alive)
    at::Tensor get(const std::string & name) const;
    // all names, sorted
    std::vector<std::string> names() const;
    size_t size() const { return tensors_.size(); }
    uint64_t total_bytes() const;
    const std::vector<std::string> & files() const { return paths_; }
    const std::string & source() const { return source_; }
    std::string format() const { return format_; }

    WeightView view(const std::string & prefix) const;

    // compares what is present under `prefix` with `expected` (names relative to prefix)
    KeyReport check(const std::vector<ExpectedTensor> & expected, const std::string & prefix = "") const;

private:
    std::string source_;
    std::string format_;  // "torch" or "safetensors"
    std::vector<std::string> paths_;
    std::vector<std::shared_ptr<io::MappedFile>> files_;
    std::vector<TensorInfo> tensors_;
    std::unordered_map<std::string, size_t> by_name_;
    friend class WeightView;
};

// a prefix view: view("llm.").get("model.norm.weight") reads "llm.model.norm.weight"
class WeightView {
public:
    WeightView(const WeightMap * map, std::string prefix) : map_(map), prefix_(std::move(prefix)) {}
    bool contains(const std::string & name) const { return map_->contains(prefix_ + name); }
    at::Tensor get(const std::string & name) const { return map_->get(prefix_ + name); }
    // the tensor, after checking its shape; throws naming the full key otherwise
    at::Tensor get(const std::string & name, const std::vector<int64_t> & shape) const;
    const TensorInfo & info(const std::string & name) const { return map_->info(prefix_ + name); }
    WeightView view(const std::string & sub) const { return WeightView(map_, prefix_ + sub); }
    // names under the prefix, relative to it
    std::vector<std::string> names() const;
    const std::string & prefix() const { return prefix_; }

private:
    const WeightMap * map_;
    std::string prefix_;
};

}  // namespace visionllm
