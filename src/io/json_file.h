#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace visionllm::io {

// reads and parses a JSON file; errors name the file and the parse position
nlohmann::json read_json_file(const std::string & path);
bool file_exists(const std::string & path);  // a regular file
bool dir_exists(const std::string & path);   // a directory
// the whole file; errors name it
std::string read_text_file(const std::string & path);

}  // namespace visionllm::io
