// The restricted unpickler on raw pickle bytes (the data.pkl of torch archives).
#include <cstddef>
#include <cstdint>

#include "io/pickle.h"
#include "visionllm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    try {
        visionllm::io::Unpickler up(data, size, "fuzz.pkl");
        up.load();
    } catch (const visionllm::Error &) {
    }
    return 0;
}
