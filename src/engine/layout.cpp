#include "engine/layout.h"

#include "decoders/gdino/layout.h"
#include "llm/layout.h"
#include "vision/layout.h"
#include "visionllm/error.h"

namespace visionllm::engine {

std::vector<ComponentLayout> model_layout(const ModelConfig & m) {
    std::vector<ComponentLayout> out;
    switch (m.kind) {
        case ModelKind::Llama: out.push_back({"llm", "", llm::llama_expected_weights(m.llama)}); break;
        case ModelKind::ClipVision: out.push_back({"vision", "", vision::clip_vision_expected_weights(m.clip)}); break;
        case ModelKind::VisionLLMv2: {
            const auto & c = m.vllm;
            const int64_t h = c.llm.hidden_size, vh = c.vision.hidden_size;
            out.push_back({"vis_encoder", "vis_encoder.", vision::clip_vision_expected_weights(c.vision)});
            out.push_back({"vl_bridge", "vl_bridge.", vision::bridge_expected_weights(vh, h)});
            if (c.use_region_encoder)
                out.push_back({"region_encoder", "region_encoder.", vision::region_encoder_expected_weights(vh, h)});
            out.push_back({"llm", "llm.", llm::llama_expected_weights(c.llm)});
            // super-link queries: one table per routing family, built whatever decoders are enabled
            out.push_back({"emb_embeddings",
                           "emb_embeddings_",
                           {{"det.weight", {c.num_embs, h}},
                            {"pose.weight", {c.num_embs, h}},
                            {"gen.weight", {c.num_embs_gen, h}},
                            {"edit.weight", {c.num_embs_gen, h}}}});
            if (c.use_gdino) {
                if (!c.gdino) fail("model layout: use_gdino is set but there is no gdino_config");
                out.push_back({"gdino", "gdino.", gdino::gdino_expected_weights(*c.gdino)});
            }
            if (c.use_unipose) out.push_back({"unipose", "unipose.", {}, false});
            if (c.use_sd) out.push_back({"sd", "sd.", {}, false});
            if (c.use_ip2p) out.push_back({"ip2p", "ip2p.", {}, false});
            break;
        }
    }
    return out;
}

}  // namespace visionllm::engine
