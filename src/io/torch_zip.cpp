// torch.save zip archives: <prefix>/data.pkl describes the object tree, each
// storage lives uncompressed in <prefix>/data/<key>.
#include <unordered_set>

#include "io/bytes.h"
#include "io/formats.h"
#include "io/pickle.h"
#include "io/zip.h"
#include "visionllm/error.h"

namespace visionllm::io {

void check_view_bounds(const TensorInfo & t, int64_t storage_offset, int64_t storage_numel, const std::string & what) {
    if (storage_offset < 0) fail(what, ": tensor '", t.name, "' has a negative storage offset");
    uint64_t numel = 1;
    uint64_t last = uint64_t(storage_offset);
    for (size_t d = 0; d < t.shape.size(); ++d) {
        if (t.shape[d] < 0 || t.strides[d] < 0)
            fail(what, ": tensor '", t.name, "' has a negative size or stride ", shape_str(t.shape));
        numel = mul_checked(numel, uint64_t(t.shape[d]), what + ": tensor '" + t.name + "'");
        if (t.shape[d] > 0)
            last = add_checked(last, mul_checked(uint64_t(t.shape[d] - 1), uint64_t(t.strides[d]), what), what);
    }
    mul_checked(numel, dtype_size(t.dtype), what + ": tensor '" + t.name + "'");
    if (numel > 0 && last >= uint64_t(storage_numel))
        fail(what, ": tensor '", t.name, "' ", shape_str(t.shape), " at storage offset ", storage_offset,
             " reaches element ", last, " but its storage holds only ", storage_numel, " elements");
}

namespace {

void flatten(const PyValue * v, const std::string & prefix, std::vector<std::pair<std::string, const PyValue *>> & out,
             const std::string & what) {
    for (const auto & kv : v->dict) {
        if (kv.first->kind != PyValue::Kind::Str) fail(what, ": state dict has a non-string key");
        std::string name = prefix.empty() ? kv.first->s : prefix + "." + kv.first->s;
        if (kv.second->kind == PyValue::Kind::Tensor) {
            out.emplace_back(name, kv.second);
        } else if (kv.second->kind == PyValue::Kind::Dict) {
            flatten(kv.second, name, out, what);
        }
        // other values (an epoch counter, a config string) are not weights
    }
}

}  // namespace

std::vector<TensorInfo> parse_torch_zip(const uint8_t * data, size_t size, const std::string & what) {
    if (size >= 2 && data[0] == 0x80 && data[1] <= 5)
        fail(what, ": legacy (pre-1.6, non-zip) torch.save format is not supported; re-save it with a current torch");
    if (size < 4 || rd_le(data, 4) != 0x04034b50)
        fail(what, ": not a torch.save zip archive (does not start with a zip header)");
    ZipReader zip(data, size, what);

    std::string prefix;
    for (const auto & e : zip.entries()) {
        const std::string suffix = "/data.pkl";
        if (e.name.size() > suffix.size() && e.name.compare(e.name.size() - suffix.size(), suffix.size(), suffix) == 0 &&
            e.name.find('/') == e.name.size() - suffix.size()) {
            prefix = e.name.substr(0, e.name.size() - suffix.size() + 1);
            break;
        }
    }
    if (prefix.empty()) fail(what, ": zip archive has no <name>/data.pkl entry; not a torch.save checkpoint");
    if (const ZipEntry * bo = zip.find(prefix + "byteorder")) {
        std::string order(reinterpret_cast<const char *>(data + bo->data_offset), size_t(bo->size));
        if (order != "little") fail(what, ": byte order '", order, "' is not supported (little-endian only)");
    }

    const ZipEntry & pkl = zip.stored(prefix + "data.pkl");
    Unpickler up(data + pkl.data_offset, size_t(pkl.size), what + " (" + prefix + "data.pkl)");
    const PyValue * root = up.load();
    if (root->kind != PyValue::Kind::Dict) fail(what, ": the pickled object is not a state dict (dict of tensors)");
    std::vector<std::pair<std::string, const PyValue *>> named;
    flatten(root, "", named, what);

    std::vector<TensorInfo> out;
    out.reserve(named.size());
    std::unordered_set<std::string> seen;
    for (const auto & [name, tv] : named) {
        if (!seen.insert(name).second) fail(what, ": duplicate tensor name '", name, "'");
        const PyValue * st = tv->items[0];
        const ZipEntry & e = zip.stored(prefix + "data/" + st->s);
        const uint64_t es = dtype_size(st->dtype);
        if (mul_checked(uint64_t(st->i), es, what) != e.size)
            fail(what, ": storage '", st->s, "' of tensor '", name, "' holds ", e.size, " bytes but the pickle declares ",
                 st->i, " elements of ", dtype_name(st->dtype));
        TensorInfo t;
        t.name = name;
        t.dtype = st->dtype;
        t.shape = tv->sizes;
        t.strides = tv->strides;
        check_view_bounds(t, tv->storage_offset, st->i, what);
        t.data_offset = e.data_offset + uint64_t(tv->storage_offset) * es;
        out.push_back(std::move(t));
    }
    return out;
}

}  // namespace visionllm::io
