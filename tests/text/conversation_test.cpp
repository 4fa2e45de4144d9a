// vicuna_v1 renders exactly as conversation.py's SeparatorStyle.TWO does
// (shared/reference/visionllmv2.md §1.3).
#include <gtest/gtest.h>

#include "common/test_util.h"
#include "text/conversation.h"

using visionllm::text::Conversation;

namespace {
const std::string k_system =
    "A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, detailed, "
    "and polite answers to the user's questions.";
}

TEST(Conversation, SingleTurnForGeneration) {
    Conversation c = visionllm::text::vicuna_v1();
    c.append(0, "<image>\nWhat is in the picture?");
    c.append(1, "");
    EXPECT_EQ(c.prompt(), k_system + " USER: <image>\nWhat is in the picture? ASSISTANT:");
}

TEST(Conversation, TeacherForcedAnswerEndsWithEos) {
    Conversation c = visionllm::text::vicuna_v1();
    c.append(0, "<image>\nDetect the cats.");
    c.append(1, "[DET][EMB][EMB2][EMB3][EMB4]");
    EXPECT_EQ(c.prompt(), k_system + " USER: <image>\nDetect the cats. ASSISTANT: [DET][EMB][EMB2][EMB3][EMB4]</s>");
}

TEST(Conversation, MultiTurn) {
    Conversation c = visionllm::text::conversation_template("v1");
    c.append(0, "Hi");
    c.append(1, "Hello! How can I help?");
    c.append(0, "Count to three.");
    c.append(1, "");
    EXPECT_EQ(c.prompt(), k_system + " USER: Hi ASSISTANT: Hello! How can I help?</s>USER: Count to three. ASSISTANT:");
}

TEST(Conversation, EmptyAndErrors) {
    EXPECT_EQ(visionllm::text::vicuna_v1().prompt(), k_system + " ");
    std::string e = visionllm::test::error_of([] { visionllm::text::conversation_template("chatml"); });
    EXPECT_NE(e.find("--template"), std::string::npos) << e;
    EXPECT_NE(e.find("chatml"), std::string::npos) << e;
    Conversation c = visionllm::text::vicuna_v1();
    c.append(2, "x");
    EXPECT_NE(visionllm::test::error_of([&] { c.prompt(); }), "");
}
