// A small command-line parser shared by the visionllm tools: long and short
// flags, values as the next argument or after '=', --help, and errors that name
// the flag at fault.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace visionllm::cli {

class Args {
public:
    Args(std::string usage, std::string summary);

    // names: "-m,--model"; a value flag shows `metavar` in the help
    void add(const std::string & names, const std::string & metavar, const std::string & help,
             const std::string & def = "");
    void add_switch(const std::string & names, const std::string & help);

    // false when --help was asked for (the help is printed to stdout)
    bool parse(int argc, char ** argv);

    bool has(const std::string & name) const;  // given on the command line
    std::string get(const std::string & name) const;  // value or default (the last one when repeated)
    // every value of a flag given several times, in command-line order
    std::vector<std::string> get_all(const std::string & name) const;
    // every value flag as given, in command-line order: (long name, value)
    const std::vector<std::pair<std::string, std::string>> & sequence() const { return sequence_; }
    // the value, failing with the flag named when it is absent
    std::string require(const std::string & name) const;
    long long get_int(const std::string & name) const;
    double get_float(const std::string & name) const;
    bool on(const std::string & name) const;  // a switch
    std::string help() const;

private:
    struct Opt {
        std::string short_name, long_name, metavar, help, def;
        bool is_switch = false;
    };
    const Opt & find(const std::string & name) const;
    std::string usage_, summary_;
    std::vector<Opt> opts_;
    std::map<std::string, std::string> values_;
    std::map<std::string, std::vector<std::string>> all_values_;
    std::vector<std::pair<std::string, std::string>> sequence_;
};

}  // namespace visionllm::cli
