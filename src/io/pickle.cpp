#include "io/pickle.h"

#include <cstring>

#include "io/bytes.h"
#include "visionllm/error.h"

namespace visionllm::io {

namespace {
constexpr int k_max_depth = 64;
constexpr size_t k_max_dims = 64;

const char * kind_name(PyValue::Kind k) {
    switch (k) {
        case PyValue::Kind::None: return "None";
        case PyValue::Kind::Bool: return "bool";
        case PyValue::Kind::Int: return "int";
        case PyValue::Kind::Float: return "float";
        case PyValue::Kind::Str: return "str";
        case PyValue::Kind::Bytes: return "bytes";
        case PyValue::Kind::Tuple: return "tuple";
        case PyValue::Kind::List: return "list";
        case PyValue::Kind::Dict: return "dict";
        case PyValue::Kind::Global: return "global";
        case PyValue::Kind::Storage: return "storage";
        case PyValue::Kind::Tensor: return "tensor";
        case PyValue::Kind::Mark: return "mark";
    }
    return "?";
}
}  // namespace

Unpickler::Unpickler(const uint8_t * data, size_t size, std::string what)
    : data_(data), size_(size), what_(std::move(what)) {}

PyValue * Unpickler::make(PyValue::Kind k) {
    arena_.push_back(std::make_unique<PyValue>());
    arena_.back()->kind = k;
    return arena_.back().get();
}

PyValue * Unpickler::pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() <= marks_.back()))
        fail(what_, ": malformed pickle: stack underflow");
    PyValue * v = stack_.back();
    stack_.pop_back();
    return v;
}

std::vector<PyValue *> Unpickler::pop_mark() {
    if (marks_.empty()) fail(what_, ": malformed pickle: no MARK on the stack");
    size_t m = marks_.back();
    marks_.pop_back();
    std::vector<PyValue *> out(stack_.begin() + long(m), stack_.end());
    stack_.resize(m);
    return out;
}

void Unpickler::set_depth(PyValue * parent, PyValue * child) {
    if (child->depth + 1 > parent->depth) parent->depth = child->depth + 1;
    if (parent->depth > k_max_depth) fail(what_, ": malformed pickle: containers nested deeper than ", k_max_depth);
}

PyValue * Unpickler::persistent_load(PyValue * pid) {
    // ('storage', storage_type, key, location, numel)
    if (pid->kind != PyValue::Kind::Tuple || pid->items.size() != 5 || pid->items[0]->kind != PyValue::Kind::Str ||
        pid->items[0]->s != "storage")
        fail(what_, ": unsupported persistent id (expected a torch ('storage', type, key, location, numel) tuple)");
    PyValue * type = pid->items[1];
    PyValue * key = pid->items[2];
    PyValue * numel = pid->items[4];
    if (type->kind != PyValue::Kind::Global || key->kind != PyValue::Kind::Str || numel->kind != PyValue::Kind::Int)
        fail(what_, ": malformed storage reference");
    PyValue * st = make(PyValue::Kind::Storage);
    std::string cls = type->s.substr(type->s.rfind('.') + 1);
    if (type->s == "torch.UntypedStorage" || type->s == "torch.storage.UntypedStorage") {
        st->dtype = DType::U8;
    } else if (type->s.rfind("torch.", 0) != 0 || !dtype_from_torch_storage(cls, st->dtype)) {
        fail(what_, ": unsupported storage type '", type->s, "' (storage key '", key->s, "')");
    }
    if (numel->i < 0) fail(what_, ": storage '", key->s, "' has a negative element count");
    st->s = key->s;
    st->i = numel->i;
    return st;
}

PyValue * Unpickler::rebuild_tensor(const std::vector<PyValue *> & a) {
    // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
    if (a.size() < 4 || a[0]->kind != PyValue::Kind::Storage || a[1]->kind != PyValue::Kind::Int ||
        a[2]->kind != PyValue::Kind::Tuple || a[3]->kind != PyValue::Kind::Tuple)
        fail(what_, ": malformed _rebuild_tensor_v2 arguments");
    PyValue * t = make(PyValue::Kind::Tensor);
    t->items.push_back(a[0]);
    t->dtype = a[0]->dtype;
    t->storage_offset = a[1]->i;
    if (a[2]->items.size() > k_max_dims || a[2]->items.size() != a[3]->items.size())
        fail(what_, ": tensor in storage '", a[0]->s, "' has mismatched size and stride tuples");
    for (size_t d = 0; d < a[2]->items.size(); ++d) {
        PyValue * sz = a[2]->items[d];
        PyValue * sd = a[3]->items[d];
        if (sz->kind != PyValue::Kind::Int || sd->kind != PyValue::Kind::Int)
            fail(what_, ": tensor in storage '", a[0]->s, "' has a non-integer size or stride");
        t->sizes.push_back(sz->i);
        t->strides.push_back(sd->i);
    }
    return t;
}

PyValue * Unpickler::call(PyValue * fn, PyValue * args) {
    if (fn->kind != PyValue::Kind::Global) fail(what_, ": malformed pickle: REDUCE on a ", kind_name(fn->kind));
    if (args->kind != PyValue::Kind::Tuple) fail(what_, ": malformed pickle: REDUCE arguments are not a tuple");
    const auto & a = args->items;
    const std::string & f = fn->s;
    if (f == "collections.OrderedDict" || f == "builtins.dict") {
        PyValue * d = make(PyValue::Kind::Dict);
        if (!a.empty()) fail(what_, ": OrderedDict built from arguments is not supported");
        return d;
    }
    if (f == "torch._utils._rebuild_tensor_v2") return rebuild_tensor(a);
    if (f == "torch._utils._rebuild_parameter" || f == "torch._utils._rebuild_parameter_with_state") {
        if (a.empty() || a[0]->kind != PyValue::Kind::Tensor) fail(what_, ": malformed _rebuild_parameter arguments");
        return a[0];
    }
    if (f == "torch._tensor._rebuild_from_type_v2") {
        // (func, new_type, args, state): the subclass is dropped, the tensor kept
        if (a.size() < 3 || a[2]->kind != PyValue::Kind::Tuple) fail(what_, ": malformed _rebuild_from_type_v2 arguments");
        PyValue * r = call(a[0], a[2]);
        if (r->kind != PyValue::Kind::Tensor) fail(what_, ": _rebuild_from_type_v2 did not rebuild a tensor");
        return r;
    }
    fail(what_, ": unsupported Python object '", f,
         "' in the checkpoint; only tensors, dicts, lists and plain values can be loaded");
}

PyValue * Unpickler::load() {
    ByteReader r(data_, size_, what_);
    auto push = [&](PyValue * v) { stack_.push_back(v); };
    auto memo_get = [&](uint64_t idx) {
        auto it = memo_.find(idx);
        if (it == memo_.end()) fail(what_, ": malformed pickle: memo key ", idx, " was never stored");
        push(it->second);
    };
    auto memo_put = [&](uint64_t idx) {
        if (stack_.empty()) fail(what_, ": malformed pickle: memoizing an empty stack");
        memo_[idx] = stack_.back();
    };
    auto str_value = [&](uint64_t n, PyValue::Kind k) {
        PyValue * v = make(k);
        v->s = r.str(n);
        push(v);
    };
    auto int_value = [&](int64_t x) {
        PyValue * v = make(PyValue::Kind::Int);
        v->i = x;
        push(v);
    };
    auto long_value = [&](uint64_t n) {
        if (n > 8) fail(what_, ": integer of ", n, " bytes does not fit 64 bits");
        const uint8_t * p = r.take(n);
        uint64_t x = rd_le(p, int(n));
        if (n > 0 && n < 8 && (p[n - 1] & 0x80)) x |= ~uint64_t(0) << (8 * n);  // sign-extend
        int_value(int64_t(x));
    };
    auto tuple_of = [&](std::vector<PyValue *> items) {
        PyValue * t = make(PyValue::Kind::Tuple);
        for (PyValue * it : items) set_depth(t, it);
        t->items = std::move(items);
        push(t);
    };
    auto setitems = [&](PyValue * d, const std::vector<PyValue *> & kv) {
        if (d->kind != PyValue::Kind::Dict) fail(what_, ": malformed pickle: SETITEM on a ", kind_name(d->kind));
        if (kv.size() % 2 != 0) fail(what_, ": malformed pickle: odd number of SETITEMS values");
        for (size_t k = 0; k < kv.size(); k += 2) {
            set_depth(d, kv[k + 1]);
            d->dict.emplace_back(kv[k], kv[k + 1]);
        }
    };
    auto append = [&](PyValue * l, const std::vector<PyValue *> & vs) {
        if (l->kind != PyValue::Kind::List) fail(what_, ": malformed pickle: APPEND on a ", kind_name(l->kind));
        for (PyValue * v : vs) {
            set_depth(l, v);
            l->items.push_back(v);
        }
    };

    while (true) {
        size_t at = r.pos();
        uint8_t op = r.u8();
        switch (op) {
            case 0x80: r.u8(); break;  // PROTO
            case 0x95: r.u(8); break;  // FRAME
            case '}': push(make(PyValue::Kind::Dict)); break;
            case ']': push(make(PyValue::Kind::List)); break;
            case ')': push(make(PyValue::Kind::Tuple)); break;
            case '(': marks_.push_back(stack_.size()); break;
            case 'q': memo_put(r.u(1)); break;
            case 'r': memo_put(r.u(4)); break;
            case 0x94: memo_put(memo_.size()); break;  // MEMOIZE
            case 'h': memo_get(r.u(1)); break;
            case 'j': memo_get(r.u(4)); break;
            case 'X': str_value(r.u(4), PyValue::Kind::Str); break;
            case 0x8c: str_value(r.u(1), PyValue::Kind::Str); break;
            case 0x8d: str_value(r.u(8), PyValue::Kind::Str); break;
            case 'T': str_value(r.u(4), PyValue::Kind::Str); break;
            case 'U': str_value(r.u(1), PyValue::Kind::Str); break;
            case 'B': str_value(r.u(4), PyValue::Kind::Bytes); break;
            case 'C': str_value(r.u(1), PyValue::Kind::Bytes); break;
            case 0x8e: str_value(r.u(8), PyValue::Kind::Bytes); break;
            case 'c': {
                PyValue * g = make(PyValue::Kind::Global);
                std::string mod = r.line();
                g->s = mod + "." + r.line();
                push(g);
                break;
            }
            case 0x93: {  // STACK_GLOBAL
                PyValue * name = pop();
                PyValue * mod = pop();
                if (name->kind != PyValue::Kind::Str || mod->kind != PyValue::Kind::Str)
                    fail(what_, ": malformed pickle: STACK_GLOBAL needs two strings");
                PyValue * g = make(PyValue::Kind::Global);
                g->s = mod->s + "." + name->s;
                push(g);
                break;
            }
            case 'Q': push(persistent_load(pop())); break;  // BINPERSID
            case 't': tuple_of(pop_mark()); break;
            case 0x85: tuple_of({pop()}); break;
            case 0x86: {
                PyValue * b = pop();
                PyValue * a = pop();
                tuple_of({a, b});
                break;
            }
            case 0x87: {
                PyValue * c = pop();
                PyValue * b = pop();
                PyValue * a = pop();
                tuple_of({a, b, c});
                break;
            }
            case 'J': long_value(4); break;
            case 'K': int_value(int64_t(r.u(1))); break;
            case 'M': int_value(int64_t(r.u(2))); break;
            case 0x8a: long_value(r.u(1)); break;  // LONG1
            case 0x8b: long_value(r.u(4)); break;  // LONG4
            case 0x88:
            case 0x89: {
                PyValue * v = make(PyValue::Kind::Bool);
                v->i = op == 0x88;
                push(v);
                break;
            }
            case 'N': push(make(PyValue::Kind::None)); break;
            case 'G': {  // BINFLOAT, big-endian
                const uint8_t * p = r.take(8);
                uint64_t bits = 0;
                for (int k = 0; k < 8; ++k) bits = (bits << 8) | p[k];
                PyValue * v = make(PyValue::Kind::Float);
                std::memcpy(&v->f, &bits, 8);
                push(v);
                break;
            }
            case 'R': {
                PyValue * args = pop();
                PyValue * fn = pop();
                push(call(fn, args));
                break;
            }
            case 'b': {  // BUILD: state of OrderedDict (_metadata) or of a Parameter; not needed
                pop();
                if (stack_.empty()) fail(what_, ": malformed pickle: BUILD on an empty stack");
                break;
            }
            case 's': {
                PyValue * v = pop();
                PyValue * k = pop();
                if (stack_.empty()) fail(what_, ": malformed pickle: SETITEM on an empty stack");
                setitems(stack_.back(), {k, v});
                break;
            }
            case 'u': {
                auto kv = pop_mark();
                if (stack_.empty()) fail(what_, ": malformed pickle: SETITEMS on an empty stack");
                setitems(stack_.back(), kv);
                break;
            }
            case 'a': {
                PyValue * v = pop();
                if (stack_.empty()) fail(what_, ": malformed pickle: APPEND on an empty stack");
                append(stack_.back(), {v});
                break;
            }
            case 'e': {
                auto vs = pop_mark();
                if (stack_.empty()) fail(what_, ": malformed pickle: APPENDS on an empty stack");
                append(stack_.back(), vs);
                break;
            }
            case 'l': {
                auto vs = pop_mark();
                push(make(PyValue::Kind::List));
                append(stack_.back(), vs);
                break;
            }
            case 'd': {
                auto kv = pop_mark();
                push(make(PyValue::Kind::Dict));
                setitems(stack_.back(), kv);
                break;
            }
            case '0': pop(); break;  // POP
            case '2': {               // DUP
                if (stack_.empty()) fail(what_, ": malformed pickle: DUP on an empty stack");
                push(stack_.back());
                break;
            }
            case '.': {
                PyValue * v = pop();
                return v;
            }
            default:
                fail(what_, ": unsupported pickle opcode 0x", "0123456789abcdef"[op >> 4], "0123456789abcdef"[op & 15],
                     " at offset ", at);
        }
    }
}

}  // namespace visionllm::io
