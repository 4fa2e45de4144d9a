// Any byte string either parses as a torch.save archive or raises visionllm::Error.
#include <cstddef>
#include <cstdint>

#include "io/formats.h"
#include "visionllm/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t * data, size_t size) {
    try {
        auto ts = visionllm::io::parse_torch_zip(data, size, "fuzz.bin");
        for (const auto & t : ts) {
            // the last element of every accepted view lies inside the input
            uint64_t last = 0;
            bool empty = false;
            for (size_t d = 0; d < t.shape.size(); ++d) {
                if (t.shape[d] == 0) empty = true;
                else last += uint64_t(t.shape[d] - 1) * uint64_t(t.strides[d]);
            }
            if (!empty && t.data_offset + (last + 1) * visionllm::dtype_size(t.dtype) > size) __builtin_trap();
        }
    } catch (const visionllm::Error &) {
    }
    return 0;
}
