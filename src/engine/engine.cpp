// Engine: one VisionLLMv2 checkpoint loaded once; chat() runs a request the
// way the official chat/VQA/region evaluations do (visionllmv2.md §1.4 a, b):
// anyres tiles -> CLIP (penultimate layer, CLS dropped) -> vl_bridge -> the
// <im_patch> rows; visual prompts -> region encoder on the global tile and the
// last three CLIP layers -> the <region> rows; vicuna_v1 prompt; greedy (or
// sampled) decoding until EOS.
#include "visionllm/engine.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstring>
#include <sstream>

#include "io/image.h"
#include "llm/generate.h"
#include "llm/llama.h"
#include "superlink/splice.h"
#include "text/conversation.h"
#include "text/tokenizer.h"
#include "vision/clip.h"
#include "vision/layout.h"
#include "vision/preprocess.h"
#include "vision/region_encoder.h"
#include "vision/visual_prompt.h"
#include "visionllm/checkpoint.h"
#include "visionllm/config.h"
#include "visionllm/device.h"
#include "visionllm/error.h"

namespace visionllm {

namespace {

using clock_type = std::chrono::steady_clock;
double since(clock_type::time_point t) { return std::chrono::duration<double>(clock_type::now() - t).count(); }

uint64_t fnv1a(const void * data, size_t n, uint64_t h = 1469598103934665603ull) {
    const auto * p = static_cast<const uint8_t *>(data);
    for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

// a key that changes whenever the pixels, the tiling or the visual prompts change
std::string request_key(const io::Image & img, int64_t max_tiles, const std::vector<vision::VisualPrompt> & ps) {
    std::ostringstream ss;
    ss << img.width << 'x' << img.height << ':' << fnv1a(img.data.data(), img.data.size()) << ':' << max_tiles;
    for (const auto & p : ps) {
        ss << '|' << int(p.kind);
        for (double c : p.coords) ss << ',' << c;
        if (!p.mask.data.empty()) ss << ':' << p.mask.width << 'x' << p.mask.height << ':'
                                     << fnv1a(p.mask.data.data(), p.mask.data.size());
    }
    return ss.str();
}

vision::VisualPrompt to_visual_prompt(const Region & r, size_t index) {
    vision::VisualPrompt p;
    p.coords = r.coords;
    switch (r.kind) {
        case Region::Kind::Box: p.kind = vision::VisualPrompt::Kind::Box; break;
        case Region::Kind::Point: p.kind = vision::VisualPrompt::Kind::Point; break;
        case Region::Kind::Scribble: p.kind = vision::VisualPrompt::Kind::Scribble; break;
        case Region::Kind::Mask:
            p.kind = vision::VisualPrompt::Kind::Mask;
            if (!r.mask_path.empty()) {
                p.mask = io::read_mask(r.mask_path);
            } else {
                VLLM_CHECK(r.mask_width > 0 && r.mask_height > 0 &&
                               int64_t(r.mask.size()) == r.mask_width * r.mask_height,
                           "region ", index + 1, ": a mask needs mask_path, or mask_width * mask_height pixels (got ",
                           r.mask.size(), " for ", r.mask_width, "x", r.mask_height, ")");
                p.mask.width = r.mask_width;
                p.mask.height = r.mask_height;
                p.mask.channels = 1;
                p.mask.data = r.mask;
            }
            break;
    }
    return p;
}

}  // namespace

struct Engine::Impl {
    std::string dir;
    ModelConfig cfg;
    std::unique_ptr<WeightMap> map;
    std::unique_ptr<text::Tokenizer> tok;
    std::unique_ptr<llm::LlamaForCausalLM> llm;
    std::unique_ptr<vision::CLIPVisionTransformer> tower;
    std::unique_ptr<vision::VLBridge> bridge;
    std::unique_ptr<vision::RegionEncoder> region;
    vision::ImageProcessorConfig proc;
    c10::Device vdev = c10::Device(c10::kCPU);
    at::ScalarType vdtype = at::kFloat;
    int64_t im_patch_id = -1, region_id = -1;

    // the previous request, for prefix reuse
    llm::KVCache cache;
    std::vector<int64_t> context;  // ids whose keys/values the cache may hold
    std::string key;               // request_key of the image side ("" without an image)
    at::Tensor image_rows, region_rows;
    int64_t tiles = 0, grid_cols = 0, grid_rows = 0;

    int64_t tokens_per_tile() const {
        const int64_t g = cfg.vllm.vision.image_size / cfg.vllm.vision.patch_size;
        return g * g;
    }
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

std::unique_ptr<Engine> Engine::load(const std::string & dir, const EngineOptions & opt) {
    auto m = std::make_unique<Impl>();
    m->dir = dir;
    if (opt.threads < 0) fail("threads must not be negative, got ", opt.threads);
    if (opt.threads > 0) at::set_num_threads(opt.threads);
    m->cfg = load_model_config(dir);
    VLLM_CHECK(m->cfg.kind == ModelKind::VisionLLMv2, dir, ": a ", model_kind_name(m->cfg.kind),
               " checkpoint; chat needs a VisionLLMv2 checkpoint (for text-only models use `visionllm run`)");
    const VisionLLMv2Config & c = m->cfg.vllm;
    VLLM_CHECK(c.vl_bridge_type == "mlp2x_gelu", dir, "/config.json: vl_bridge_type '", c.vl_bridge_type,
               "' is not supported (the released 7B model uses mlp2x_gelu)");
    VLLM_CHECK(!c.use_pixelshuffle, dir, "/config.json: use_pixelshuffle (the 26B variant) is not supported");
    VLLM_CHECK(!c.use_llm_lora, dir, "/config.json: use_llm_lora checkpoints are not supported (merge the LoRA first)");

    m->tok = std::make_unique<text::Tokenizer>(text::Tokenizer::load(dir));
    m->im_patch_id = m->tok->token_to_id("<im_patch>");
    m->region_id = m->tok->token_to_id("<region>");
    VLLM_CHECK(m->im_patch_id >= 0 && m->im_patch_id != m->tok->unk_id(), dir,
               ": the tokenizer has no <im_patch> token (added_tokens.json / tokenizer_config.json)");

    llm::LlamaOptions lo;
    lo.device = resolve_device(opt.device, "device");
    lo.dtype = parse_compute_dtype(opt.dtype, "dtype");
    lo.context = opt.context;
    lo.copy_weights = opt.copy_weights;
    VLLM_CHECK(lo.context >= 0, "context must not be negative, got ", lo.context);
    m->map = std::make_unique<WeightMap>(WeightMap::open(dir));
    m->llm = llm::LlamaForCausalLM::from_pretrained(m->cfg, *m->map, lo);
    VLLM_CHECK(m->tok->vocab_size() <= c.llm.vocab_size, dir, ": the tokenizer has ", m->tok->vocab_size(),
               " tokens but the model's embedding only ", c.llm.vocab_size, " rows");

    // the image side
    KeyReport rep = m->map->check(vision::clip_vision_expected_weights(c.vision), "vis_encoder.");
    VLLM_CHECK(rep.ok(), dir, ": the vision tower's weights (vis_encoder.*) do not match the config:\n", rep.to_string());
    rep = m->map->check(vision::bridge_expected_weights(c.vision.hidden_size, c.llm.hidden_size), "vl_bridge.");
    VLLM_CHECK(rep.ok(), dir, ": the vl_bridge weights do not match the config:\n", rep.to_string());
    if (c.use_region_encoder) {
        rep = m->map->check(vision::region_encoder_expected_weights(c.vision.hidden_size, c.llm.hidden_size),
                            "region_encoder.");
        VLLM_CHECK(rep.ok(), dir, ": the region encoder's weights do not match the config:\n", rep.to_string());
    }
    m->vdev = lo.device;
    const at::ScalarType vd = parse_compute_dtype(opt.vision_dtype, "vision_dtype");
    if (vd != at::ScalarType::Undefined) m->vdtype = vd;
    else m->vdtype = m->vdev.is_cpu() ? at::kFloat : m->llm->dtype();
    VLLM_CHECK(!(m->vdev.is_cpu() && m->vdtype == at::kHalf), "vision_dtype f16 needs CUDA; use f32 or bf16 on the CPU");
    const llm::Loader vload{m->vdev, m->vdtype, opt.copy_weights};
    // the deepest CLIP layer anyone reads: the LLM's (vis_output_layer) and, with regions, the last
    const int64_t L = c.vision.num_hidden_layers;
    const int64_t llm_layer = c.vis_output_layer < 0 ? L + 1 + c.vis_output_layer : c.vis_output_layer;
    VLLM_CHECK(llm_layer >= 0 && llm_layer <= L, dir, "/config.json: vis_output_layer ", c.vis_output_layer,
               " is out of range for ", L, " vision layers");
    VLLM_CHECK(!c.use_region_encoder || L >= 3, dir, ": the region encoder reads the last three vision layers, but the "
               "tower has ", L);
    m->tower = std::make_unique<vision::CLIPVisionTransformer>(c.vision, m->map->view("vis_encoder.vision_model."),
                                                               vload, c.use_region_encoder ? L : llm_layer);
    m->bridge = std::make_unique<vision::VLBridge>(m->map->view("vl_bridge."), c.vision.hidden_size,
                                                   c.llm.hidden_size, vload);
    if (c.use_region_encoder)
        m->region = std::make_unique<vision::RegionEncoder>(m->map->view("region_encoder."), c.vision.hidden_size,
                                                            c.llm.hidden_size, vload);
    // preprocessor_config.json when the checkpoint has one, else the OpenAI CLIP defaults at the tower's size
    const std::string pp = dir + "/preprocessor_config.json";
    if (FILE * f = std::fopen(pp.c_str(), "rb")) {
        std::fclose(f);
        m->proc = vision::load_image_processor_config(pp);
    } else {
        m->proc.size = m->proc.crop_size = c.vision.image_size;
    }
    VLLM_CHECK(m->proc.crop_size == c.vision.image_size, pp, ": crop_size ", m->proc.crop_size,
               " differs from the vision tower's image_size ", c.vision.image_size);
    m->cache = m->llm->new_cache();
    return std::unique_ptr<Engine>(new Engine(std::move(m)));
}

void Engine::reset() {
    impl_->context.clear();
    impl_->cache.clear();
    impl_->key.clear();
    impl_->image_rows = at::Tensor();
    impl_->region_rows = at::Tensor();
}

std::string Engine::describe() const {
    const Impl & m = *impl_;
    std::ostringstream ss;
    ss << "model: " << m.dir << " | llm " << m.llm->device().str() << " " << c10::toString(m.llm->dtype())
       << " | vision " << m.vdev.str() << " " << c10::toString(m.vdtype) << " | context " << m.llm->context()
       << " | region encoder " << (m.region ? "yes" : "no");
    return ss.str();
}

ChatResult Engine::chat(const ChatRequest & req, const std::function<bool(const std::string &)> & on_text) {
    Impl & m = *impl_;
    ChatResult res;
    VLLM_CHECK(!req.messages.empty(), "chat: no messages");
    for (size_t i = 0; i < req.messages.size(); ++i) {
        const std::string & role = req.messages[i].role;
        const char * want = i % 2 == 0 ? "user" : "assistant";
        VLLM_CHECK(role == want, "chat: message ", i + 1, " has role '", role, "' where '", want,
                   "' was expected (turns alternate user, assistant, ..., user)");
    }
    VLLM_CHECK(req.messages.size() % 2 == 1, "chat: the last message must be the user's");
    VLLM_CHECK(req.max_tiles >= 1 && req.max_tiles <= 64, "chat: max_tiles must be in [1, 64], got ", req.max_tiles);
    VLLM_CHECK(req.regions.empty() || !req.image.empty(), "chat: regions need an image");
    VLLM_CHECK(req.regions.empty() || m.region, m.dir,
               ": this checkpoint has no region encoder (use_region_encoder is false), so regions cannot be used");

    // ---- the image side: reused when the pixels, tiling and prompts are those of the previous request
    const auto t_img = clock_type::now();
    std::string key;
    io::Image img;
    std::vector<vision::VisualPrompt> prompts;
    if (!req.image.empty()) {
        VLLM_CHECK(req.image.path.empty() || req.image.rgb.empty(), "chat: give the image as a path or as pixels, not both");
        img = !req.image.path.empty() ? io::read_image(req.image.path)
                                      : io::image_from_rgb(req.image.rgb.data(), req.image.width, req.image.height);
        for (size_t i = 0; i < req.regions.size(); ++i) prompts.push_back(to_visual_prompt(req.regions[i], i));
        key = request_key(img, req.max_tiles, prompts);
    }
    if (key != m.key) {
        // a different image (or none): nothing of the previous conversation can be reused
        m.context.clear();
        m.cache.clear();
        m.image_rows = m.region_rows = at::Tensor();
        m.tiles = m.grid_cols = m.grid_rows = 0;
        if (!key.empty()) {
            const VisionLLMv2Config & c = m.cfg.vllm;
            vision::PreprocessedImage pre = vision::preprocess_anyres(img, m.proc, req.max_tiles);
            at::Tensor px = pre.pixel_values.to(m.vdev, m.vdtype);
            std::vector<int64_t> want = {c.vis_output_layer};
            if (!prompts.empty()) want.insert(want.end(), {-3, -2, -1});
            const std::vector<at::Tensor> hs = m.tower->hidden_states(px, want);
            const int64_t P = m.tokens_per_tile();
            at::Tensor feats = hs[0].narrow(1, 1, P);
            m.image_rows = m.bridge->forward(feats).reshape({-1, c.llm.hidden_size}).to(m.llm->dtype());
            m.tiles = pre.pixel_values.size(0);
            m.grid_cols = pre.grid.cols;
            m.grid_rows = pre.grid.rows;
            if (!prompts.empty()) {
                // the global image: the thumbnail (last tile), or the only tile
                const int64_t S = c.vision.image_size, n = int64_t(prompts.size());
                at::Tensor masks = vision::rasterize_prompts(prompts, img.width, img.height, S).to(m.vdev, m.vdtype);
                at::Tensor global = px.narrow(0, m.tiles - 1, 1).expand({n, -1, -1, -1});
                std::vector<at::Tensor> levels;
                for (size_t k = 1; k < hs.size(); ++k) levels.push_back(hs[k].narrow(0, m.tiles - 1, 1).narrow(1, 1, P));
                m.region_rows = m.region->forward(global, masks, levels).to(m.llm->dtype());
            }
        }
        m.key = key;
    }
    res.tiles = m.tiles;
    res.grid_cols = m.grid_cols;
    res.grid_rows = m.grid_rows;
    res.image_seconds = since(t_img);

    // ---- the prompt
    text::Conversation conv = text::vicuna_v1();
    if (!req.system.empty()) conv.system = req.system;
    for (size_t i = 0; i < req.messages.size(); ++i) {
        std::string content = req.messages[i].content;
        const bool has_tag = content.find("<image>") != std::string::npos;
        if (i == 0 && !req.image.empty() && !has_tag) content = "<image>\n" + content;
        VLLM_CHECK(!has_tag || (i == 0 && !req.image.empty()), "chat: message ", i + 1, " holds \"<image>\" but ",
                   req.image.empty() ? "no image was given" : "only the first user turn may hold the image");
        conv.append(int(i % 2), content);
    }
    conv.append(1, "");
    const std::vector<int64_t> ids =
        superlink::tokenize_with_image(*m.tok, conv.prompt(), req.image.empty() ? 0 : m.tiles * m.tokens_per_tile());
    const int64_t n_regions = superlink::count_id(ids, m.region_id);
    VLLM_CHECK(n_regions == int64_t(req.regions.size()), "chat: the prompt has ", n_regions,
               " <region> placeholder", n_regions == 1 ? "" : "s", " but ", req.regions.size(), " region",
               req.regions.size() == 1 ? " was" : "s were", " given; refer to region k as <reg>regionk<region></reg>");
    res.prompt_tokens = int64_t(ids.size());
    VLLM_CHECK(res.prompt_tokens < m.llm->context(), "chat: the prompt has ", res.prompt_tokens,
               " tokens, which leaves no room in the context of ", m.llm->context(), " tokens (context / -c)");

    // ---- the part of the prompt the cache does not hold yet
    size_t common = 0;
    while (common < ids.size() && common < m.context.size() && ids[common] == m.context[common]) ++common;
    common = std::min(common, size_t(m.cache.length));  // the last sampled token was never run
    if (common == ids.size()) --common;                 // at least one token runs, to get logits
    m.cache.length = int64_t(common);
    res.prompt_tokens_run = res.prompt_tokens - int64_t(common);

    at::Tensor id_t = at::tensor(ids, at::kLong).view({1, -1}).to(m.llm->device());
    at::Tensor embeds = m.llm->embed(id_t);
    superlink::splice_rows(embeds, ids, m.im_patch_id, m.image_rows, "<im_patch>");
    if (m.region_id >= 0) superlink::splice_rows(embeds, ids, m.region_id, m.region_rows, "<region>");
    embeds = embeds.narrow(1, int64_t(common), int64_t(ids.size() - common));

    // ---- generation
    llm::GenerateOptions go;
    go.max_new_tokens = req.gen.max_new_tokens;
    go.sampler.temperature = req.gen.temperature;
    go.sampler.top_k = req.gen.top_k;
    go.sampler.top_p = req.gen.top_p;
    go.sampler.min_p = req.gen.min_p;
    go.sampler.repetition_penalty = req.gen.repeat_penalty;
    go.sampler.seed = req.gen.seed;
    go.prefill_chunk = 512;
    const int64_t eos = m.tok->eos_id();
    if (!req.gen.ignore_eos) go.stop_ids = {eos};
    text::StreamDecoder sd(*m.tok);
    std::vector<int64_t> answer;
    m.context = ids;
    auto st = llm::generate_from_embeds(*m.llm, m.cache, embeds, ids, go, [&](int64_t id) {
        res.ids.push_back(id);
        if (id == eos && !req.gen.ignore_eos) return true;
        answer.push_back(id);
        const std::string piece = sd.push(id);
        if (on_text && !piece.empty()) return on_text(piece);
        return true;
    });
    const std::string tail = sd.flush();
    if (on_text && !tail.empty()) on_text(tail);
    m.context.insert(m.context.end(), answer.begin(), answer.end());
    res.stopped = st.stopped;
    res.prompt_seconds = st.prompt_seconds;
    res.generate_seconds = st.generate_seconds;
    std::string text = m.tok->decode(answer, /*skip_special_tokens=*/true);
    const size_t b = text.find_first_not_of(" \t\n\r"), e = text.find_last_not_of(" \t\n\r");
    res.text = b == std::string::npos ? std::string() : text.substr(b, e - b + 1);
    return res;
}

}  // namespace visionllm
