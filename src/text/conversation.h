// Chat templates, as LLaVA/VisionLLMv2's conversation.py renders them. The 7B
// model uses vicuna_v1 (SeparatorStyle.TWO): "{system} USER: {q} ASSISTANT: {a}</s>USER: ..."
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace visionllm::text {

struct Conversation {
    std::string name;
    std::string system;
    std::string roles[2];
    std::string sep = " ";
    std::string sep2 = "</s>";
    // (role index, message); an empty message leaves the turn open ("ASSISTANT:"), as the reference does
    std::vector<std::pair<int, std::string>> messages;

    void append(int role, std::string message) { messages.emplace_back(role, std::move(message)); }
    // the prompt text; turns alternate separators: sep after a user turn, sep2 after an assistant turn
    std::string prompt() const;
};

// conv_vicuna_v1: the template of VisionLLMv2-7B and Vicuna v1.1+/v1.5
Conversation vicuna_v1();
// a template by name ("vicuna_v1", alias "v1"); throws naming the argument otherwise
Conversation conversation_template(const std::string & name, const std::string & what = "--template");

}  // namespace visionllm::text
