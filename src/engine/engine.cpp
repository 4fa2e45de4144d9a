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
#include <cmath>
#include <cstring>
#include <sstream>

#include "io/image.h"
#include "llm/generate.h"
#include "llm/llama.h"
#include "decoders/gdino/grounding_dino.h"
#include "decoders/gdino/postprocess.h"
#include "decoders/gdino/preprocess.h"
#include "superlink/routing.h"
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
    // the super link and its decoders
    superlink::RoutingTokens routing;
    superlink::QueryTables queries;
    std::unique_ptr<gdino::OVGroundingDinoForObjectDetection> gdino;
    c10::Device ddev = c10::Device(c10::kCPU);
    at::ScalarType ddtype = at::kFloat;

    // the previous request, for prefix reuse
    llm::KVCache cache;
    std::vector<int64_t> context;  // ids whose keys/values the cache may hold
    std::string key;               // request_key of the image side ("" without an image)
    at::Tensor image_rows, region_rows;
    io::Image image;  // the request's image (the decoders read it at their own resolution)
    int64_t tiles = 0, grid_cols = 0, grid_rows = 0;

    int64_t tokens_per_tile() const {
        const int64_t g = cfg.vllm.vision.image_size / cfg.vllm.vision.patch_size;
        return g * g;
    }
};

// the DetectOptions a request may carry
void check_detect_options(const DetectOptions & o, const char * what) {
    VLLM_CHECK(o.topk >= 0, what, ": topk must not be negative, got ", o.topk);
    VLLM_CHECK(std::isfinite(o.threshold) && o.threshold >= 0.f && o.threshold <= 1.f, what,
               ": threshold must be in [0, 1], got ", o.threshold);
}

// runs Grounding DINO on the request's image with one text token per group (text_query [G, K, hidden])
std::vector<Detection> run_gdino(Engine::Impl & m, const at::Tensor & text_query,
                                 const std::vector<std::string> & phrases, const DetectOptions & o, bool grounding);

// the image side of a request: reused when the pixels, tiling and prompts are those of the previous request
void prepare_image(Engine::Impl & m, const ChatRequest & req) {
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
        m.image = io::Image();
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
            m.image = std::move(img);
        }
        m.key = key;
    }
}

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
    // the super link: routing tokens, query tables, decoders
    m->routing = superlink::RoutingTokens::resolve(*m->tok, c.num_embs, c.num_embs_gen, dir);
    m->queries = superlink::QueryTables::load(m->map->view(""), c.llm.hidden_size, c.num_embs, c.num_embs_gen,
                                              lo.device, m->llm->dtype());
    const at::ScalarType dd = parse_compute_dtype(opt.decoder_dtype, "decoder_dtype");
    m->ddev = lo.device;
    m->ddtype = dd != at::ScalarType::Undefined ? dd : m->vdtype;
    VLLM_CHECK(!(m->ddev.is_cpu() && m->ddtype == at::kHalf), "decoder_dtype f16 needs CUDA; use f32 or bf16 on the CPU");
    if (c.use_gdino) {
        VLLM_CHECK(c.gdino.has_value(), dir, "/config.json: use_gdino is true but gdino_config is missing");
        VLLM_CHECK(c.gdino->l_hidden_size == c.llm.hidden_size, dir, "/config.json: gdino_config.l_hidden_size ",
                   c.gdino->l_hidden_size, " differs from the LLM's hidden_size ", c.llm.hidden_size);
        VLLM_CHECK(c.gdino->num_embs == c.num_embs, dir, "/config.json: gdino_config.num_embs ", c.gdino->num_embs,
                   " differs from num_embs ", c.num_embs);
        m->gdino = std::make_unique<gdino::OVGroundingDinoForObjectDetection>(
            *c.gdino, m->map->view("gdino."), llm::Loader{m->ddev, m->ddtype, opt.copy_weights});
    }
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
       << " | region encoder " << (m.region ? "yes" : "no") << " | grounding dino "
       << (m.gdino ? m.ddev.str() + " " + c10::toString(m.ddtype) : std::string("no"));
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
    check_detect_options(req.detect, "chat");
    VLLM_CHECK(req.regions.empty() || !req.image.empty(), "chat: regions need an image");
    VLLM_CHECK(req.regions.empty() || m.region, m.dir,
               ": this checkpoint has no region encoder (use_region_encoder is false), so regions cannot be used");

    const auto t_img = clock_type::now();
    prepare_image(m, req);
    res.tiles = m.tiles;
    res.width = m.image.width;
    res.height = m.image.height;
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

    // ---- the embeddings: image rows, region rows, and the super-link queries after any routing token
    at::Tensor id_t = at::tensor(ids, at::kLong).view({1, -1}).to(m.llm->device());
    at::Tensor embeds = m.llm->embed(id_t);
    superlink::splice_rows(embeds, ids, m.im_patch_id, m.image_rows, "<im_patch>");
    if (m.region_id >= 0) superlink::splice_rows(embeds, ids, m.region_id, m.region_rows, "<region>");
    superlink::Expanded ex = superlink::insert_queries(embeds, ids, m.routing, m.queries);
    VLLM_CHECK(int64_t(ex.ids.size()) < m.llm->context(), "chat: the prompt has ", ex.ids.size(),
               " tokens with its super-link queries, which leaves no room in the context of ", m.llm->context(),
               " tokens (context / -c)");

    // ---- the part of the prompt the cache does not hold yet
    size_t common = 0;
    while (common < ex.ids.size() && common < m.context.size() && ex.ids[common] == m.context[common]) ++common;
    common = std::min(common, size_t(m.cache.length));  // the last sampled token was never run
    if (common == ex.ids.size()) --common;              // at least one token runs, to get logits
    m.cache.length = int64_t(common);
    res.prompt_tokens_run = int64_t(ex.ids.size() - common);
    embeds = ex.embeds.narrow(1, int64_t(common), int64_t(ex.ids.size() - common));

    // ---- generation; a routing token gets its queries in the same step, their hidden states kept
    llm::GenerateOptions go;
    go.max_new_tokens = req.gen.max_new_tokens;
    go.sampler.temperature = req.gen.temperature;
    go.sampler.top_k = req.gen.top_k;
    go.sampler.top_p = req.gen.top_p;
    go.sampler.min_p = req.gen.min_p;
    go.sampler.repetition_penalty = req.gen.repeat_penalty;
    go.sampler.seed = req.gen.seed;
    go.prefill_chunk = 512;
    std::vector<std::pair<superlink::Route, at::Tensor>> captured;  // (route, [K, hidden]) in order
    go.insert_after = [&](int64_t id) -> at::Tensor {
        const auto r = m.routing.route_of(id);
        if (!r || !m.queries.rows(*r).defined()) return at::Tensor();
        return m.queries.rows(*r);
    };
    go.on_inserted = [&](int64_t id, const at::Tensor & hidden) {
        const auto r = m.routing.route_of(id);
        captured.emplace_back(*r, hidden.clone());
        const std::vector<int64_t> q = m.routing.query_ids(*r);
        m.context.insert(m.context.end(), q.begin(), q.end());
    };
    const int64_t eos = m.tok->eos_id();
    if (!req.gen.ignore_eos) go.stop_ids = {eos};
    text::StreamDecoder sd(*m.tok);
    std::vector<int64_t> answer;
    m.context = ex.ids;
    auto st = llm::generate_from_embeds(*m.llm, m.cache, embeds, ex.ids, go, [&](int64_t id) {
        res.ids.push_back(id);
        if (id == eos && !req.gen.ignore_eos) return true;
        answer.push_back(id);
        m.context.push_back(id);
        const std::string piece = sd.push(id);
        if (on_text && !piece.empty()) return on_text(piece);
        return true;
    });
    const std::string tail = sd.flush();
    if (on_text && !tail.empty()) on_text(tail);
    res.stopped = st.stopped;
    res.prompt_seconds = st.prompt_seconds;
    res.generate_seconds = st.generate_seconds;
    std::string text = m.tok->decode(answer, /*skip_special_tokens=*/true);
    const size_t b = text.find_first_not_of(" \t\n\r"), e = text.find_last_not_of(" \t\n\r");
    res.text = b == std::string::npos ? std::string() : text.substr(b, e - b + 1);

    // ---- the super link's decoders
    const std::vector<superlink::AnswerGroup> groups = superlink::parse_answer(*m.tok, answer, m.routing);
    std::vector<at::Tensor> det_rows;
    for (size_t i = 0; i < groups.size(); ++i) {
        res.routes.push_back(superlink::route_token(groups[i].route));
        res.phrases.push_back(groups[i].phrase);
    }
    std::vector<std::string> det_phrases;
    for (size_t i = 0, k = 0; i < groups.size(); ++i) {
        // a routing token whose queries never ran (no table) has no hidden states
        while (k < captured.size() && captured[k].first != groups[i].route) ++k;
        if (k == captured.size()) break;
        if (std::string(superlink::route_family(groups[i].route)) == "det") {
            det_rows.push_back(captured[k].second);
            det_phrases.push_back(groups[i].phrase);
        }
        ++k;
    }
    if (!det_rows.empty() && m.gdino && !m.image.data.empty()) {
        const auto t_dec = clock_type::now();
        res.detections = run_gdino(m, at::stack(det_rows), det_phrases, req.detect, false);
        res.decoder_seconds = since(t_dec);
    }
    return res;
}

namespace {

// the answer as decode(skip_special_tokens=True) shows it: without the routing and query tokens
std::string strip_routing_text(std::string s) {
    for (size_t p; (p = s.find('[')) != std::string::npos;) {
        const size_t e = s.find(']', p);
        if (e == std::string::npos) break;
        const std::string t = s.substr(p, e - p + 1);
        const bool special = t == "[DET]" || t == "[SEG]" || t == "[GRD]" || t == "[POSE]" || t == "[GEN]" ||
                             t == "[EDIT]" || t.rfind("[EMB", 0) == 0;
        if (!special) break;
        s.erase(p, e - p + 1);
    }
    return s;
}

}  // namespace

std::vector<Detection> run_gdino(Engine::Impl & m, const at::Tensor & text_query,
                                         const std::vector<std::string> & phrases, const DetectOptions & o,
                                         bool grounding) {
    VLLM_CHECK(m.gdino, m.dir, ": this checkpoint has no Grounding DINO (use_gdino is false)");
    const int64_t G = text_query.size(0);
    const int64_t max_text = m.cfg.vllm.gdino->max_text_len;
    VLLM_CHECK(G <= max_text, "detect: ", G, " classes/phrases, more than Grounding DINO's max_text_len of ", max_text);
    gdino::DetectionImage di = gdino::preprocess_detection(m.image);
    at::Tensor px = di.pixel_values.to(m.ddev, m.ddtype);
    at::Tensor pm = di.pixel_mask.to(m.ddev);
    at::Tensor tq = text_query.unsqueeze(0).to(m.ddev, m.ddtype);
    at::Tensor tm = at::ones({1, G}, at::TensorOptions().dtype(at::kBool).device(m.ddev));
    gdino::ForwardOptions fo;
    fo.masks = o.masks;
    gdino::GroundingDinoOutput out = m.gdino->forward(px, pm, tq, tm, fo);
    const int64_t topk = o.topk > 0 ? o.topk : grounding ? 1 : 100;
    std::vector<gdino::Detection> ds = gdino::post_process_detections(
        out.logits.back()[0].to(at::kCPU, at::kFloat), out.boxes.back()[0].to(at::kCPU, at::kFloat), G, topk,
        di.width, di.height, o.threshold);
    std::vector<Detection> res;
    std::vector<gdino::Rle> rles;
    if (o.masks && !ds.empty()) {
        const at::Tensor sel = out.masks.back()[0].index_select(0, gdino::detection_queries(ds).to(m.ddev));
        rles = gdino::post_process_masks_rle(sel.to(at::kFloat), di.resized_width, di.resized_height, di.width,
                                             di.height);
    }
    for (size_t i = 0; i < ds.size(); ++i) {
        Detection d;
        d.label = ds[i].label;
        d.phrase = size_t(d.label) < phrases.size() ? phrases[size_t(d.label)] : std::string();
        d.score = ds[i].score;
        std::copy(ds[i].box, ds[i].box + 4, d.box);
        d.query = ds[i].query;
        if (i < rles.size()) {
            d.mask_rle = eval::rle_to_string(rles[i]);
            d.mask_area = eval::rle_area(rles[i]);
            d.mask_runs = std::move(rles[i].counts);
        }
        res.push_back(std::move(d));
    }
    return res;
}

DetectResult Engine::detect(const DetectRequest & req, const std::function<bool(const std::string &)> & on_text) {
    Impl & m = *impl_;
    VLLM_CHECK(m.gdino, m.dir, ": this checkpoint has no Grounding DINO (use_gdino is false in config.json)");
    VLLM_CHECK(!req.image.empty(), "detect: an image is required");
    VLLM_CHECK(req.task == "det" || req.task == "seg" || req.task == "grounding",
               "detect: task must be det, seg or grounding, not '", req.task, "'");
    VLLM_CHECK(req.classes.empty() != req.prompt.empty(), "detect: give classes or a prompt (exactly one of them)");
    VLLM_CHECK(req.max_tiles >= 1 && req.max_tiles <= 64, "detect: max_tiles must be in [1, 64], got ", req.max_tiles);
    check_detect_options(req.options, "detect");
    DetectResult res;
    if (!req.prompt.empty()) {
        // free-form: generation with the super link
        ChatRequest c;
        c.messages = {{"user", req.prompt}};
        c.image = req.image;
        c.gen = req.gen;
        c.system = req.system;
        c.max_tiles = req.max_tiles;
        c.detect = req.options;
        ChatResult r = chat(c, on_text);
        for (size_t i = 0; i < r.routes.size(); ++i)
            if (r.routes[i] == "[DET]" || r.routes[i] == "[SEG]" || r.routes[i] == "[GRD]") res.phrases.push_back(r.phrases[i]);
        res.detections = std::move(r.detections);
        res.text = r.text;
        res.prompt_tokens = r.prompt_tokens;
        res.image_seconds = r.image_seconds;
        res.llm_seconds = r.prompt_seconds + r.generate_seconds;
        res.decoder_seconds = r.decoder_seconds;
        res.width = m.image.width;
        res.height = m.image.height;
        return res;
    }
    // the evaluation's teacher-forced single pass (§1.4 c)
    const int64_t K = m.cfg.vllm.num_embs;
    const int64_t max_text = m.cfg.vllm.gdino->max_text_len;
    VLLM_CHECK(req.task != "grounding" || req.classes.size() == 1,
               "detect: grounding takes one expression, got ", req.classes.size());
    VLLM_CHECK(int64_t(req.classes.size()) <= max_text, "detect: ", req.classes.size(),
               " classes, more than Grounding DINO's max_text_len of ", max_text);
    const superlink::TaskPrompt tp = req.task == "det"   ? superlink::detection_prompt(req.classes, K)
                                     : req.task == "seg" ? superlink::segmentation_prompt(req.classes, K)
                                                         : superlink::grounding_prompt(req.classes[0], K);
    ChatRequest c;
    c.messages = {{"user", tp.question}};
    c.image = req.image;
    c.system = req.system;
    c.max_tiles = req.max_tiles;
    const auto t_img = clock_type::now();
    prepare_image(m, c);
    res.image_seconds = since(t_img);
    res.width = m.image.width;
    res.height = m.image.height;

    text::Conversation conv = text::vicuna_v1();
    if (!req.system.empty()) conv.system = req.system;
    conv.append(0, "<image>\n" + tp.question);
    conv.append(1, tp.answer);
    const std::vector<int64_t> ids = superlink::tokenize_with_image(*m.tok, conv.prompt(), m.tiles * m.tokens_per_tile());
    res.prompt_tokens = int64_t(ids.size());
    VLLM_CHECK(res.prompt_tokens <= m.llm->context(), "detect: the prompt has ", res.prompt_tokens,
               " tokens, more than the context of ", m.llm->context(), " tokens (context / -c; fewer classes or tiles)");
    const auto t_llm = clock_type::now();
    at::Tensor embeds = m.llm->embed(at::tensor(ids, at::kLong).view({1, -1}).to(m.llm->device()));
    superlink::splice_rows(embeds, ids, m.im_patch_id, m.image_rows, "<im_patch>");
    const std::vector<superlink::RoutingGroup> groups = superlink::overwrite_queries(embeds, ids, m.routing, m.queries);
    VLLM_CHECK(groups.size() == (req.task == "grounding" ? size_t(1) : req.classes.size()),
               "detect: the templated answer tokenised into ", groups.size(), " routing groups, expected ",
               req.classes.size(), " (a class name may hold special-token text)");
    // one forward in chunks through a fresh cache, keeping the rows at the query positions
    m.context.clear();
    m.cache.clear();
    std::vector<int64_t> pos;
    for (const auto & g : groups) pos.insert(pos.end(), g.query_pos.begin(), g.query_pos.end());
    std::vector<at::Tensor> rows;
    const int64_t T = embeds.size(1), chunk = 512;
    size_t next = 0;
    for (int64_t s = 0; s < T; s += chunk) {
        const int64_t n = std::min(chunk, T - s);
        at::Tensor h = m.llm->hidden_states(embeds.narrow(1, s, n), m.cache);
        for (; next < pos.size() && pos[next] < s + n; ++next) rows.push_back(h[0][pos[next] - s]);
    }
    m.cache.clear();  // the cache holds a teacher-forced answer: no conversation continues from it
    res.llm_seconds = since(t_llm);
    at::Tensor tq = at::stack(rows).view({int64_t(groups.size()), K, -1});
    res.phrases = req.classes;
    res.text = strip_routing_text(tp.answer);
    const auto t_dec = clock_type::now();
    res.detections = run_gdino(m, tq, res.phrases, req.options, req.task == "grounding");
    res.decoder_seconds = since(t_dec);
    return res;
}

}  // namespace visionllm
