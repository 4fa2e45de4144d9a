#include "common/args.h"

#include <cstdio>
#include <cstdlib>
#include <sstream>

#include "visionllm/error.h"

namespace visionllm::cli {

Args::Args(std::string usage, std::string summary) : usage_(std::move(usage)), summary_(std::move(summary)) {
    add_switch("-h,--help", "show this help and exit");
}

void Args::add(const std::string & names, const std::string & metavar, const std::string & help, const std::string & def) {
    Opt o;
    size_t comma = names.find(',');
    if (comma == std::string::npos) {
        o.long_name = names;
    } else {
        o.short_name = names.substr(0, comma);
        o.long_name = names.substr(comma + 1);
    }
    o.metavar = metavar;
    o.help = help;
    o.def = def;
    o.is_switch = metavar.empty();
    opts_.push_back(o);
}

void Args::add_switch(const std::string & names, const std::string & help) { add(names, "", help); }

const Args::Opt & Args::find(const std::string & name) const {
    for (const auto & o : opts_) {
        if (o.long_name == name || o.short_name == name) return o;
    }
    fail("internal: flag '", name, "' is not declared");
}

bool Args::parse(int argc, char ** argv) {
    for (int i = 0; i < argc; ++i) {
        std::string a = argv[i];
        std::string value;
        bool has_value = false;
        if (a.rfind("--", 0) == 0) {
            size_t eq = a.find('=');
            if (eq != std::string::npos) {
                value = a.substr(eq + 1);
                a = a.substr(0, eq);
                has_value = true;
            }
        }
        const Opt * opt = nullptr;
        for (const auto & o : opts_) {
            if (a == o.long_name || (!o.short_name.empty() && a == o.short_name)) opt = &o;
        }
        if (opt == nullptr) {
            if (a.size() > 1 && a[0] == '-') fail("unknown option '", a, "' (see --help)");
            fail("unexpected argument '", a, "' (see --help)");
        }
        if (opt->long_name == "--help") {
            std::fputs(help().c_str(), stdout);
            return false;
        }
        if (opt->is_switch) {
            if (has_value) fail("option ", opt->long_name, " takes no value");
            values_[opt->long_name] = "1";
            continue;
        }
        if (!has_value) {
            if (i + 1 >= argc) fail("option ", opt->long_name, " needs a value ", opt->metavar);
            value = argv[++i];
        }
        values_[opt->long_name] = value;
        all_values_[opt->long_name].push_back(value);
        sequence_.emplace_back(opt->long_name, value);
    }
    return true;
}

std::vector<std::string> Args::get_all(const std::string & name) const {
    auto it = all_values_.find(find(name).long_name);
    return it == all_values_.end() ? std::vector<std::string>{} : it->second;
}

bool Args::has(const std::string & name) const { return values_.count(find(name).long_name) != 0; }

std::string Args::get(const std::string & name) const {
    const Opt & o = find(name);
    auto it = values_.find(o.long_name);
    return it == values_.end() ? o.def : it->second;
}

std::string Args::require(const std::string & name) const {
    const Opt & o = find(name);
    std::string v = get(name);
    if (v.empty()) fail("missing required option ", o.long_name, " ", o.metavar, " (see --help)");
    return v;
}

long long Args::get_int(const std::string & name) const {
    const std::string v = get(name);
    char * end = nullptr;
    long long x = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0') fail("option ", find(name).long_name, ": '", v, "' is not an integer");
    return x;
}

double Args::get_float(const std::string & name) const {
    const std::string v = get(name);
    char * end = nullptr;
    double x = std::strtod(v.c_str(), &end);
    if (v.empty() || *end != '\0') fail("option ", find(name).long_name, ": '", v, "' is not a number");
    return x;
}

bool Args::on(const std::string & name) const { return has(name); }

std::string Args::help() const {
    std::ostringstream ss;
    ss << "usage: " << usage_ << "\n\n" << summary_ << "\n\noptions:\n";
    for (const auto & o : opts_) {
        std::string left = "  " + (o.short_name.empty() ? std::string("    ") : o.short_name + ", ") + o.long_name;
        if (!o.metavar.empty()) left += " " + o.metavar;
        ss << left;
        if (left.size() < 30) ss << std::string(30 - left.size(), ' ');
        else ss << "\n" << std::string(30, ' ');
        ss << o.help;
        if (!o.def.empty()) ss << " (default: " << o.def << ")";
        ss << "\n";
    }
    return ss.str();
}

}  // namespace visionllm::cli
