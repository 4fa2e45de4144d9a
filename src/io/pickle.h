// A restricted unpickler for the data.pkl of torch.save archives. It builds a
// small value tree in an arena and understands only what state dicts contain:
// dicts, lists, tuples, scalars, strings, and tensors rebuilt from storages.
// Any other global is refused with its name, so a checkpoint can never run code.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "visionllm/dtype.h"

namespace visionllm::io {

struct PyValue {
    enum class Kind { None, Bool, Int, Float, Str, Bytes, Tuple, List, Dict, Global, Storage, Tensor, Mark };
    Kind kind = Kind::None;
    int64_t i = 0;  // Bool, Int; Storage: numel
    double f = 0;
    std::string s;       // Str, Bytes; Global: "module.name"; Storage: key
    std::vector<PyValue *> items;  // Tuple, List; Tensor: {storage}
    std::vector<std::pair<PyValue *, PyValue *>> dict;
    DType dtype = DType::U8;  // Storage
    // Tensor
    int64_t storage_offset = 0;
    std::vector<int64_t> sizes, strides;
    int depth = 0;  // nesting depth, bounded so hostile input cannot exhaust the stack
};

class Unpickler {
public:
    // `what` names the pickle in error messages
    Unpickler(const uint8_t * data, size_t size, std::string what);
    // runs to STOP and returns the result; the values live as long as the Unpickler
    PyValue * load();

private:
    PyValue * make(PyValue::Kind k);
    PyValue * pop();
    std::vector<PyValue *> pop_mark();
    PyValue * call(PyValue * fn, PyValue * args);
    PyValue * rebuild_tensor(const std::vector<PyValue *> & a);
    PyValue * persistent_load(PyValue * pid);
    void set_depth(PyValue * parent, PyValue * child);

    const uint8_t * data_;
    size_t size_;
    std::string what_;
    std::vector<std::unique_ptr<PyValue>> arena_;
    std::vector<PyValue *> stack_;
    std::vector<size_t> marks_;
    std::unordered_map<uint64_t, PyValue *> memo_;
};

}  // namespace visionllm::io
