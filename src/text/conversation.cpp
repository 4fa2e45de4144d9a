#include "text/conversation.h"

#include "visionllm/error.h"

namespace visionllm::text {

std::string Conversation::prompt() const {
    const std::string seps[2] = {sep, sep2};
    std::string ret = system + seps[0];
    for (size_t i = 0; i < messages.size(); ++i) {
        const auto & [role, message] = messages[i];
        if (role < 0 || role > 1) fail("conversation: role index ", role, " is neither 0 (user) nor 1 (assistant)");
        if (!message.empty()) ret += roles[role] + ": " + message + seps[i % 2];
        else ret += roles[role] + ":";
    }
    return ret;
}

Conversation vicuna_v1() {
    Conversation c;
    c.name = "vicuna_v1";
    c.system =
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions.";
    c.roles[0] = "USER";
    c.roles[1] = "ASSISTANT";
    c.sep = " ";
    c.sep2 = "</s>";
    return c;
}

Conversation conversation_template(const std::string & name, const std::string & what) {
    if (name == "vicuna_v1" || name == "v1") return vicuna_v1();
    fail(what, ": unknown chat template '", name, "' (known: vicuna_v1)");
}

}  // namespace visionllm::text
