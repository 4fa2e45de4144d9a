// Any byte string either decodes to an image of the size its header claims,
// within the limits, or raises visionllm::Error (header checks before OpenCV).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "io/image.h"
#include "visionllm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    const std::vector<uint8_t> bytes(data, data + size);
    try {
        const auto img = visionllm::io::decode_image(bytes, "fuzz.img", size > 0 && (data[size - 1] & 1));
        if (img.width <= 0 || img.height <= 0 || img.channels != 3 ||
            img.data.size() != size_t(img.width * img.height * 3) || img.width > visionllm::io::kMaxImageSide ||
            img.height > visionllm::io::kMaxImageSide)
            __builtin_trap();
    } catch (const visionllm::Error &) {
    }
    return 0;
}
