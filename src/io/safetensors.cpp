// safetensors: u64 header length, a JSON header, then the raw bytes.
#include <algorithm>
#include <nlohmann/json.hpp>

#include "io/bytes.h"
#include "io/formats.h"
#include "visionllm/error.h"

namespace visionllm::io {

std::vector<TensorInfo> parse_safetensors(const uint8_t * data, size_t size, const std::string & what,
                                          std::map<std::string, std::string> * metadata) {
    if (size < 8) fail(what, ": not a safetensors file (", size, " bytes; truncated?)");
    uint64_t hlen = rd_le(data, 8);
    if (hlen > size - 8)
        fail(what, ": header length ", hlen, " is beyond the end of the file (", size, " bytes); truncated or not safetensors");
    if (hlen > (uint64_t(100) << 20)) fail(what, ": header of ", hlen, " bytes exceeds the 100 MB limit");
    nlohmann::json header;
    try {
        header = nlohmann::json::parse(data + 8, data + 8 + hlen);
    } catch (const nlohmann::json::exception & e) {
        fail(what, ": invalid JSON header: ", e.what());
    }
    if (!header.is_object()) fail(what, ": header is not a JSON object");
    const uint64_t base = 8 + hlen;
    const uint64_t data_size = size - base;

    std::vector<TensorInfo> out;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string & name = it.key();
        const auto & v = it.value();
        if (name == "__metadata__") {
            if (!v.is_object()) fail(what, ": __metadata__ is not an object");
            for (auto m = v.begin(); m != v.end(); ++m) {
                if (!m.value().is_string()) fail(what, ": __metadata__ value '", m.key(), "' is not a string");
                if (metadata != nullptr) (*metadata)[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        const std::string tw = what + ": tensor '" + name + "'";
        if (!v.is_object() || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
            fail(tw, " needs dtype, shape and data_offsets");
        const auto & jd = v["dtype"];
        const auto & js = v["shape"];
        const auto & jo = v["data_offsets"];
        TensorInfo t;
        t.name = name;
        if (!jd.is_string() || !dtype_from_safetensors(jd.get<std::string>(), t.dtype))
            fail(tw, " has unknown dtype ", jd.dump());
        if (!js.is_array() || js.size() > 64) fail(tw, " has an invalid shape ", js.dump());
        uint64_t numel = 1;
        for (const auto & d : js) {
            if (!d.is_number_unsigned()) fail(tw, " has an invalid shape ", js.dump());
            uint64_t n = d.get<uint64_t>();
            if (n > uint64_t(INT64_MAX)) fail(tw, " has an invalid shape ", js.dump());
            t.shape.push_back(int64_t(n));
            numel = mul_checked(numel, n, tw);
        }
        if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() || !jo[1].is_number_unsigned())
            fail(tw, " has invalid data_offsets ", jo.dump());
        uint64_t b = jo[0].get<uint64_t>(), e = jo[1].get<uint64_t>();
        if (b > e || e > data_size)
            fail(tw, " has data_offsets [", b, ", ", e, "] outside the data section (", data_size, " bytes); truncated?");
        uint64_t want = mul_checked(numel, dtype_size(t.dtype), tw);
        if (e - b != want)
            fail(tw, " ", shape_str(t.shape), " ", dtype_name(t.dtype), " needs ", want, " bytes but data_offsets span ",
                 e - b);
        t.strides.assign(t.shape.size(), 1);
        for (size_t d = t.shape.size(); d-- > 1;) t.strides[d - 1] = t.strides[d] * std::max<int64_t>(t.shape[d], 1);
        t.data_offset = base + b;
        if (e > b) ranges.emplace_back(b, e);
        out.push_back(std::move(t));
    }
    std::sort(ranges.begin(), ranges.end());
    for (size_t i = 1; i < ranges.size(); ++i) {
        if (ranges[i].first < ranges[i - 1].second) fail(what, ": tensors overlap in the data section");
    }
    return out;
}

}  // namespace visionllm::io
