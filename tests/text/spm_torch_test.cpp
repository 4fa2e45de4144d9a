// sentencepiece and LibTorch live in one process (build-notes.md §2 found a
// protobuf clash with Debian's libtorch; the wheel's LibTorch hides its
// protobuf). Also checks that make-tiny's hand-written tokenizer.model is a
// valid LLaMA-style model for the reference sentencepiece library.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <sentencepiece_processor.h>

#include "common/test_util.h"
#include "visionllm/make_tiny.h"

using namespace visionllm::test;

TEST(SentencePieceWithTorch, BothWorkInOneProcess) {
    sentencepiece::SentencePieceProcessor sp;
    const auto status = sp.Load(source_dir() + "/tests/data/spm/unigram_identity.model");
    ASSERT_TRUE(status.ok()) << status.ToString();
    EXPECT_EQ(sp.GetPieceSize(), 300);
    std::vector<int> ids;
    ASSERT_TRUE(sp.Encode("Licensed under the Apache License", &ids).ok());
    EXPECT_GT(ids.size(), 3u);
    std::string text;
    ASSERT_TRUE(sp.Decode(ids, &text).ok());
    EXPECT_EQ(text, "Licensed under the Apache License");

    at::Tensor x = at::arange(6, at::kFloat).reshape({2, 3});
    at::Tensor y = at::matmul(x, x.t());
    EXPECT_FLOAT_EQ(y[1][1].item<float>(), 9.f + 16.f + 25.f);
    // and the ids go through torch
    at::Tensor t = at::tensor(std::vector<int64_t>(ids.begin(), ids.end()));
    EXPECT_EQ(t.numel(), int64_t(ids.size()));
}

TEST(SentencePieceWithTorch, MakeTinyTokenizerIsALlamaStyleBpeModel) {
    TempDir d("spm");
    visionllm::MakeTinyOptions o;
    o.out_dir = d.path();
    o.progress = false;
    visionllm::make_tiny(o);
    sentencepiece::SentencePieceProcessor sp;
    const auto status = sp.Load(d.file("tokenizer.model"));
    ASSERT_TRUE(status.ok()) << status.ToString();
    EXPECT_EQ(sp.unk_id(), 0);
    EXPECT_EQ(sp.bos_id(), 1);
    EXPECT_EQ(sp.eos_id(), 2);
    EXPECT_EQ(sp.pad_id(), -1);
    EXPECT_EQ(sp.IdToPiece(3), "<0x00>");
    EXPECT_TRUE(sp.IsByte(3));

    std::vector<std::string> pieces;
    ASSERT_TRUE(sp.Encode("hello world", &pieces).ok());
    EXPECT_EQ(pieces, (std::vector<std::string>{"\xe2\x96\x81hello", "\xe2\x96\x81world"}));
    ASSERT_TRUE(sp.Encode("what is 123", &pieces).ok());  // digits split
    EXPECT_EQ(pieces, (std::vector<std::string>{"\xe2\x96\x81what", "\xe2\x96\x81is", "\xe2\x96\x81", "1", "2", "3"}));
    ASSERT_TRUE(sp.Encode("\xe2\x82\xac", &pieces).ok());  // byte fallback for a character outside the vocabulary
    EXPECT_EQ(pieces, (std::vector<std::string>{"\xe2\x96\x81", "<0xE2>", "<0x82>", "<0xAC>"}));
    std::vector<int> ids;
    ASSERT_TRUE(sp.Encode("USER: describe the image ASSISTANT:", &ids).ok());
    std::string back;
    ASSERT_TRUE(sp.Decode(ids, &back).ok());
    EXPECT_EQ(back, "USER: describe the image ASSISTANT:");
}
