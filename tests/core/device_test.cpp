#include <gtest/gtest.h>

#include "common/test_util.h"
#include "visionllm/device.h"

using visionllm::test::error_of;

TEST(Device, CpuAlwaysResolves) {
    EXPECT_TRUE(visionllm::resolve_device("cpu").is_cpu());
}

TEST(Device, AutoPicksCudaOnlyWhenUsable) {
    c10::Device d = visionllm::resolve_device("auto");
    EXPECT_EQ(d.is_cuda(), visionllm::cuda_usable());
    EXPECT_EQ(visionllm::resolve_device("").type(), d.type());
}

TEST(Device, CudaWithoutGpuIsAClearError) {
    if (visionllm::cuda_usable()) GTEST_SKIP() << "a GPU is present";
    std::string e = error_of([] { visionllm::resolve_device("cuda"); });
    EXPECT_NE(e.find("--device cuda"), std::string::npos) << e;
    EXPECT_NE(e.find("--device cpu"), std::string::npos) << e;  // says what to do instead
}

TEST(Device, InvalidSpecNamesTheArgument) {
    std::string e = error_of([] { visionllm::resolve_device("gpu0", "--device"); });
    EXPECT_NE(e.find("--device"), std::string::npos) << e;
    EXPECT_NE(e.find("gpu0"), std::string::npos) << e;
    EXPECT_NE(error_of([] { visionllm::resolve_device("cuda:x"); }), "");
    EXPECT_NE(error_of([] { visionllm::resolve_device("cuda:"); }), "");
}

TEST(Device, CudaIndexBeyondCountIsAnError) {
    EXPECT_NE(error_of([] { visionllm::resolve_device("cuda:99"); }), "");
}
