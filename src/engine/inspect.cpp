#include "visionllm/inspect.h"

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/layout.h"

namespace visionllm {

bool InspectResult::ok() const {
    if (!unclaimed.empty()) return false;
    for (const auto & c : components) {
        if (!c.report.ok()) return false;
    }
    return true;
}

InspectResult inspect_model(const std::string & dir) {
    ModelConfig cfg = load_model_config(dir);
    WeightMap w = WeightMap::open(dir);
    InspectResult r;
    r.path = dir;
    r.format = w.format();
    r.kind = cfg.kind;
    r.files = w.files();
    std::vector<std::string> names = w.names();
    std::vector<bool> claimed(names.size(), false);
    for (const auto & comp : engine::model_layout(cfg)) {
        ComponentSummary s;
        s.name = comp.name;
        s.prefix = comp.prefix;
        s.checked = comp.checked;
        if (comp.checked) s.report = w.check(comp.tensors, comp.prefix);
        for (size_t i = 0; i < names.size(); ++i) {
            if (claimed[i] || names[i].compare(0, comp.prefix.size(), comp.prefix) != 0) continue;
            claimed[i] = true;
            const TensorInfo & t = w.info(names[i]);
            s.tensors++;
            s.params += uint64_t(t.numel());
            s.bytes += t.nbytes();
            s.dtype_params[dtype_name(t.dtype)] += uint64_t(t.numel());
        }
        r.params += s.params;
        r.bytes += s.bytes;
        r.components.push_back(std::move(s));
    }
    for (size_t i = 0; i < names.size(); ++i) {
        if (!claimed[i]) r.unclaimed.push_back(names[i]);
    }
    return r;
}

namespace {
std::string human_count(uint64_t n) {
    char buf[32];
    if (n >= 1000000000ull) std::snprintf(buf, sizeof buf, "%.2fB", double(n) / 1e9);
    else if (n >= 1000000ull) std::snprintf(buf, sizeof buf, "%.2fM", double(n) / 1e6);
    else if (n >= 1000ull) std::snprintf(buf, sizeof buf, "%.1fK", double(n) / 1e3);
    else std::snprintf(buf, sizeof buf, "%llu", (unsigned long long) n);
    return buf;
}
std::string human_bytes(uint64_t n) {
    char buf[32];
    if (n >= (1ull << 30)) std::snprintf(buf, sizeof buf, "%.2f GiB", double(n) / double(1ull << 30));
    else if (n >= (1ull << 20)) std::snprintf(buf, sizeof buf, "%.2f MiB", double(n) / double(1ull << 20));
    else std::snprintf(buf, sizeof buf, "%.1f KiB", double(n) / 1024.0);
    return buf;
}
}  // namespace

std::string inspect_to_text(const InspectResult & r, bool verbose) {
    std::ostringstream ss;
    ss << "model:  " << r.path << " (" << model_kind_name(r.kind) << ", " << r.format << ", " << r.files.size()
       << " file" << (r.files.size() == 1 ? "" : "s") << ")\n";
    ss << "params: " << human_count(r.params) << " (" << human_bytes(r.bytes) << ")\n\n";
    char line[256];
    std::snprintf(line, sizeof line, "%-16s %8s %10s %12s  %-22s %s\n", "component", "tensors", "params", "size",
                  "dtypes", "keys");
    ss << line;
    for (const auto & c : r.components) {
        std::string dts;
        for (const auto & [dt, n] : c.dtype_params) dts += (dts.empty() ? "" : ",") + dt;
        std::string keys;
        if (!c.checked) {
            keys = "not checked (no port yet)";
        } else if (c.report.ok()) {
            keys = "ok (" + std::to_string(c.report.expected_count - c.report.optional_absent) + " keys";
            if (c.report.optional_absent) keys += ", " + std::to_string(c.report.optional_absent) + " optional absent";
            keys += ")";
        } else {
            keys = std::to_string(c.report.missing.size()) + " missing, " + std::to_string(c.report.unexpected.size()) +
                   " unexpected, " + std::to_string(c.report.mismatched.size()) + " mismatched";
        }
        std::snprintf(line, sizeof line, "%-16s %8zu %10s %12s  %-22s %s\n", c.name.c_str(), c.tensors,
                      human_count(c.params).c_str(), human_bytes(c.bytes).c_str(), dts.c_str(), keys.c_str());
        ss << line;
    }
    for (const auto & c : r.components) {
        if (c.checked && !c.report.ok()) ss << "\n" << c.name << ":\n" << c.report.to_string(verbose ? 0 : 20);
    }
    if (!r.unclaimed.empty()) {
        ss << "\nunexpected (under no component) (" << r.unclaimed.size() << "):\n";
        for (size_t i = 0; i < r.unclaimed.size() && (verbose || i < 20); ++i) ss << "    " << r.unclaimed[i] << "\n";
        if (!verbose && r.unclaimed.size() > 20) ss << "    ... and " << r.unclaimed.size() - 20 << " more\n";
    }
    ss << "\n" << (r.ok() ? "key check: ok" : "key check: FAILED") << "\n";
    return ss.str();
}

std::string inspect_to_json(const InspectResult & r) {
    using json = nlohmann::ordered_json;
    json j;
    j["path"] = r.path;
    j["kind"] = model_kind_name(r.kind);
    j["format"] = r.format;
    j["files"] = r.files;
    j["params"] = r.params;
    j["bytes"] = r.bytes;
    j["ok"] = r.ok();
    j["components"] = json::array();
    for (const auto & c : r.components) {
        json cj;
        cj["name"] = c.name;
        cj["prefix"] = c.prefix;
        cj["tensors"] = c.tensors;
        cj["params"] = c.params;
        cj["bytes"] = c.bytes;
        cj["dtypes"] = c.dtype_params;
        cj["checked"] = c.checked;
        if (c.checked) {
            cj["expected"] = c.report.expected_count;
            cj["optional_absent"] = c.report.optional_absent;
            cj["missing"] = c.report.missing;
            cj["unexpected"] = c.report.unexpected;
            json mm = json::array();
            for (const auto & m : c.report.mismatched)
                mm.push_back({{"name", m.name}, {"expected", m.expected}, {"found", m.found}});
            cj["mismatched"] = mm;
        }
        j["components"].push_back(cj);
    }
    j["unclaimed"] = r.unclaimed;
    return j.dump(2);
}

}  // namespace visionllm
