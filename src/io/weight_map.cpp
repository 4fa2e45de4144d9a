#include <ATen/ATen.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/formats.h"
#include "io/json_file.h"
#include "io/mapped_file.h"
#include "visionllm/checkpoint.h"
#include "visionllm/error.h"

namespace visionllm {

namespace {

bool ends_with(const std::string & s, const std::string & suf) {
    return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
std::string dirname_of(const std::string & p) {
    size_t k = p.rfind('/');
    return k == std::string::npos ? "." : p.substr(0, k);
}

at::ScalarType to_scalar_type(DType dt) {
    switch (dt) {
        case DType::F64: return at::kDouble;
        case DType::F32: return at::kFloat;
        case DType::F16: return at::kHalf;
        case DType::BF16: return at::kBFloat16;
        case DType::I64: return at::kLong;
        case DType::I32: return at::kInt;
        case DType::I16: return at::kShort;
        case DType::I8: return at::kChar;
        case DType::U8: return at::kByte;
        case DType::Bool: return at::kBool;
        case DType::F8E4M3: return at::kFloat8_e4m3fn;
        case DType::F8E5M2: return at::kFloat8_e5m2;
    }
    fail("internal: unknown dtype");
}

}  // namespace

WeightMap WeightMap::open(const std::string & path) {
    WeightMap m;
    m.source_ = path;
    std::string index;
    std::vector<std::string> shards;
    if (io::dir_exists(path)) {
        const char * candidates[] = {"model.safetensors.index.json", "model.safetensors", "pytorch_model.bin.index.json",
                                     "pytorch_model.bin"};
        for (const char * c : candidates) {
            const std::string p = path + "/" + c;
            if (!io::file_exists(p)) continue;
            if (ends_with(p, ".json")) index = p;
            else shards.push_back(p);
            break;
        }
        if (index.empty() && shards.empty())
            fail(path, ": no checkpoint found (looked for model.safetensors.index.json, model.safetensors, "
                       "pytorch_model.bin.index.json, pytorch_model.bin)");
    } else if (ends_with(path, ".json")) {
        index = path;
    } else if (io::file_exists(path)) {
        shards.push_back(path);
    } else {
        fail(path, ": no such file or directory");
    }

    // index: {"metadata": {...}, "weight_map": {tensor: shard file}}
    std::map<std::string, std::string> listed;  // tensor -> shard path
    if (!index.empty()) {
        nlohmann::json j = io::read_json_file(index);
        if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
            fail(index, ": not a checkpoint index (no \"weight_map\" object)");
        std::set<std::string> seen;
        const std::string dir = dirname_of(index);
        for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
            if (!it.value().is_string()) fail(index, ": weight_map entry '", it.key(), "' is not a file name");
            std::string shard = it.value().get<std::string>();
            if (shard.empty() || shard.find('/') != std::string::npos || shard == "..")
                fail(index, ": weight_map entry '", it.key(), "' names an invalid shard file '", shard, "'");
            std::string sp = dir + "/" + shard;
            listed[it.key()] = sp;
            if (seen.insert(sp).second) {
                if (!io::file_exists(sp)) fail(index, ": shard '", shard, "' (listed for '", it.key(), "') is missing in ", dir);
                shards.push_back(sp);
            }
        }
        if (shards.empty()) fail(index, ": weight_map is empty");
        std::sort(shards.begin(), shards.end());
    }

    for (const auto & sp : shards) {
        auto f = io::MappedFile::open(sp);
        const bool st = ends_with(sp, ".safetensors");
        std::string fmt = st ? "safetensors" : "torch";
        if (m.format_.empty()) m.format_ = fmt;
        else if (m.format_ != fmt) m.format_ = "mixed";
        std::vector<TensorInfo> ts = st ? io::parse_safetensors(f->data(), f->size(), sp)
                                        : io::parse_torch_zip(f->data(), f->size(), sp);
        const int fi = int(m.files_.size());
        m.files_.push_back(f);
        m.paths_.push_back(sp);
        for (auto & t : ts) {
            t.file = fi;
            if (!index.empty()) {
                auto li = listed.find(t.name);
                if (li == listed.end() || li->second != sp) continue;  // not the index's copy of it
            }
            auto [it, fresh] = m.by_name_.emplace(t.name, m.tensors_.size());
            if (!fresh) fail(sp, ": tensor '", t.name, "' also appears in ", m.paths_[m.tensors_[it->second].file]);
            m.tensors_.push_back(std::move(t));
        }
    }
    for (const auto & [name, sp] : listed) {
        if (!m.by_name_.count(name)) fail(index, ": lists tensor '", name, "' in ", sp, " but that shard does not hold it");
    }
    return m;
}

const TensorInfo & WeightMap::info(const std::string & name) const {
    auto it = by_name_.find(name);
    if (it == by_name_.end()) fail(source_, ": no tensor named '", name, "'");
    return tensors_[it->second];
}

at::Tensor WeightMap::get(const std::string & name) const {
    const TensorInfo & t = info(name);
    std::shared_ptr<io::MappedFile> f = files_[size_t(t.file)];
    void * p = f->mutable_data() + t.data_offset;
    return at::from_blob(
        p, t.shape, t.strides, [f](void *) mutable { f.reset(); },
        at::TensorOptions().dtype(to_scalar_type(t.dtype)).device(at::kCPU));
}

std::vector<std::string> WeightMap::names() const {
    std::vector<std::string> out;
    out.reserve(tensors_.size());
    for (const auto & t : tensors_) out.push_back(t.name);
    std::sort(out.begin(), out.end());
    return out;
}

uint64_t WeightMap::total_bytes() const {
    uint64_t n = 0;
    for (const auto & t : tensors_) n += t.nbytes();
    return n;
}

WeightView WeightMap::view(const std::string & prefix) const { return WeightView(this, prefix); }

KeyReport WeightMap::check(const std::vector<ExpectedTensor> & expected, const std::string & prefix) const {
    KeyReport r;
    r.expected_count = expected.size();
    std::set<std::string> want;
    for (const auto & e : expected) {
        const std::string full = prefix + e.name;
        want.insert(full);
        auto it = by_name_.find(full);
        if (it == by_name_.end()) {
            if (e.optional) r.optional_absent++;
            else r.missing.push_back(full);
            continue;
        }
        const auto & shape = tensors_[it->second].shape;
        if (shape != e.shape) r.mismatched.push_back({full, e.shape, shape});
    }
    for (const auto & t : tensors_) {
        if (t.name.compare(0, prefix.size(), prefix) == 0 && !want.count(t.name)) r.unexpected.push_back(t.name);
    }
    std::sort(r.unexpected.begin(), r.unexpected.end());
    return r;
}

std::string KeyReport::to_string(size_t limit) const {
    std::ostringstream ss;
    auto list = [&](const char * title, size_t n, auto && item) {
        if (n == 0) return;
        ss << "  " << title << " (" << n << "):\n";
        for (size_t i = 0; i < n && (limit == 0 || i < limit); ++i) ss << "    " << item(i) << "\n";
        if (limit != 0 && n > limit) ss << "    ... and " << n - limit << " more\n";
    };
    list("missing", missing.size(), [&](size_t i) { return missing[i]; });
    list("unexpected", unexpected.size(), [&](size_t i) { return unexpected[i]; });
    list("shape mismatch", mismatched.size(), [&](size_t i) {
        return mismatched[i].name + ": expected " + shape_str(mismatched[i].expected) + ", found " +
               shape_str(mismatched[i].found);
    });
    return ss.str();
}

at::Tensor WeightView::get(const std::string & name, const std::vector<int64_t> & shape) const {
    const TensorInfo & t = info(name);
    if (t.shape != shape)
        fail(map_->source(), ": tensor '", prefix_ + name, "' has shape ", shape_str(t.shape), ", expected ",
             shape_str(shape));
    return get(name);
}

std::vector<std::string> WeightView::names() const {
    std::vector<std::string> out;
    for (const auto & n : map_->names()) {
        if (n.compare(0, prefix_.size(), prefix_) == 0) out.push_back(n.substr(prefix_.size()));
    }
    return out;
}

}  // namespace visionllm
