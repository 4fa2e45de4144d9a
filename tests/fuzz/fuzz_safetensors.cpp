// Any byte string either parses as safetensors or raises visionllm::Error.
#include <cstddef>
#include <cstdint>

#include "io/formats.h"
#include "visionllm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    try {
        auto ts = visionllm::io::parse_safetensors(data, size, "fuzz.safetensors");
        for (const auto & t : ts) {
            // every accepted tensor lies inside the input
            if (t.data_offset + t.nbytes() > size) __builtin_trap();
        }
    } catch (const visionllm::Error &) {
    }
    return 0;
}
