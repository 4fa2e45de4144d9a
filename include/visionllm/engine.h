// The public face of the engine: load a VisionLLMv2 checkpoint once, then chat
// about an image (with optional visual prompts: boxes, points, scribbles,
// masks) over one or more turns. Text streams through a callback.
//
//   visionllm::EngineOptions o;               // device "auto", dtypes from the checkpoint
//   auto engine = visionllm::Engine::load("VisionLLMv2", o);
//   visionllm::ChatRequest r;
//   r.image = visionllm::ImageInput::from_file("cat.jpg");
//   r.messages = {{"user", "What is in the image?"}};
//   auto res = engine->chat(r, [](const std::string & piece) { std::fputs(piece.c_str(), stdout); return true; });
//
// Every error is a visionllm::Error whose message names the file, argument or
// key at fault.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace visionllm {

struct EngineOptions {
    std::string device = "auto";  // "auto", "cpu", "cuda", "cuda:N"
    // LLM compute dtype: "auto" (the checkpoint's: bf16 for VisionLLMv2), "f32", "bf16", "f16" (CUDA)
    std::string dtype = "auto";
    // image side (vision tower, bridge, region encoder): "auto" is f32 on the CPU (ATen's fp32 GEMM is
    // several times faster than its bf16 one there) and the checkpoint's dtype on CUDA
    std::string vision_dtype = "auto";
    // task decoders (Grounding DINO, ...): "auto" as vision_dtype
    std::string decoder_dtype = "auto";
    int64_t context = 0;        // KV-cache length; 0: max_position_embeddings
    int threads = 0;            // CPU threads; 0: all cores
    bool copy_weights = false;  // copy weights out of the mapped checkpoint files
};

// an image: a file (JPEG, PNG, BMP, WebP; EXIF orientation applied) or RGB pixels
struct ImageInput {
    std::string path;
    std::vector<uint8_t> rgb;  // height * width * 3, row-major, when path is empty
    int64_t width = 0, height = 0;
    bool empty() const { return path.empty() && rgb.empty(); }
    static ImageInput from_file(std::string p) {
        ImageInput i;
        i.path = std::move(p);
        return i;
    }
};

// a visual prompt, in the original image's pixel coordinates
struct Region {
    enum class Kind { Box, Point, Scribble, Mask };
    Kind kind = Kind::Box;
    std::vector<double> coords;  // Box: x1,y1,x2,y2; Point: x,y; Scribble: x1,y1,x2,y2,... (a polyline)
    std::string mask_path;       // Mask: a one-channel image file the size of the image (nonzero = inside),
    std::vector<uint8_t> mask;   // or its pixels (mask_width * mask_height)
    int64_t mask_width = 0, mask_height = 0;
};

struct Message {
    std::string role;  // "user" or "assistant"
    std::string content;
};

struct GenerationParams {
    int64_t max_new_tokens = 256;  // -1: until EOS or a full context
    float temperature = 0;         // 0: greedy (the reference's setting)
    int top_k = 40;
    float top_p = 0.95f;
    float min_p = 0.05f;
    float repeat_penalty = 1.0f;
    uint64_t seed = 0;
    bool ignore_eos = false;
};

// one object found by a perception decoder (Grounding DINO)
struct Detection {
    int64_t label = 0;      // the routing group it answers (0-based: the class / phrase index)
    std::string phrase;     // that group's class name or phrase
    float score = 0;        // sigmoid probability
    float box[4] = {0, 0, 0, 0};  // x0, y0, x1, y1 in original-image pixels
    int64_t query = 0;      // the decoder query it came from
    // instance mask (when asked): COCO run-length encoding of the original-size mask (column-major runs,
    // starting with a run of zeros) and its pycocotools compressed string
    std::vector<uint32_t> mask_runs;
    std::string mask_rle;
    int64_t mask_area = 0;
};

// how decoder outputs become detections (visionllmv2.md §8)
struct DetectOptions {
    int64_t topk = 0;        // top-k over queries x groups; 0: the evaluation's (100; 1 for grounding)
    float threshold = 0.f;   // keep scores > threshold (the evaluation's 0 keeps all top-k)
    bool masks = false;      // instance masks (the mask branch)
};

struct ChatRequest {
    // alternating user/assistant turns ending with a user turn. The image belongs to the first user
    // turn: "<image>\n" is put in front of it unless the text already holds "<image>". Regions fill the
    // "<region>" placeholders in order, e.g. "What is <reg>region1<region></reg>?"
    std::vector<Message> messages;
    ImageInput image;
    std::vector<Region> regions;
    GenerationParams gen;
    std::string system;  // replaces the template's system sentence when not empty
    int64_t max_tiles = 4;  // anyres tiles at most (the thumbnail comes on top)
    // when the answer routes to Grounding DINO ([DET] [SEG] [GRD]) and the checkpoint has it
    DetectOptions detect = {100, 0.3f, false};
};

struct ChatResult {
    std::string text;                // the answer, special tokens skipped, stripped
    std::vector<int64_t> ids;        // the generated ids (the stop id included when generation stopped on it)
    bool stopped = false;            // ended on EOS rather than the token budget
    int64_t prompt_tokens = 0;       // tokens of the whole prompt
    int64_t prompt_tokens_run = 0;   // of which run now (the rest came from the previous turn's cache)
    int64_t tiles = 0, grid_cols = 0, grid_rows = 0;  // the image's anyres tiles
    double image_seconds = 0;        // preprocessing + vision tower + bridge + region encoder
    double prompt_seconds = 0, generate_seconds = 0;
    // the super link: one entry per routing token of the answer ("[DET]", "[POSE]", ...) with the phrase
    // before it, and the detections of the [DET]/[SEG]/[GRD] groups (labels index `phrases`)
    std::vector<std::string> routes, phrases;
    std::vector<Detection> detections;
    int64_t width = 0, height = 0;  // the image (boxes and masks are in its pixels)
    double decoder_seconds = 0;
};

// A detection, segmentation or grounding request (visionllmv2.md §1.4 c). With `classes`, the evaluation's
// teacher-forced single pass: the templated question and answer ("Yes, here are the results for
// cat[DET][EMB][EMB2][EMB3][EMB4], ...") run in one LLM forward. With `prompt` instead, the model answers
// freely and every routing token it emits becomes one group (generation with the super link).
struct DetectRequest {
    ImageInput image;
    std::string task = "det";           // "det" ([DET]), "seg" ([SEG], the semantic-segmentation template),
                                        // "grounding" ([GRD], one referring expression in classes[0])
    std::vector<std::string> classes;   // class names in prompt order (or the expression)
    std::string prompt;                 // a free-form request, instead of classes
    DetectOptions options;
    GenerationParams gen;               // for free-form prompts
    std::string system;
    int64_t max_tiles = 4;
};

struct DetectResult {
    std::vector<Detection> detections;  // by descending score
    std::vector<std::string> phrases;   // one per group; Detection::label indexes it
    std::string text;                   // the (templated or generated) answer, special tokens skipped
    int64_t width = 0, height = 0;      // the image
    int64_t prompt_tokens = 0;
    double image_seconds = 0, llm_seconds = 0, decoder_seconds = 0;
};

class Engine {
public:
    // a VisionLLMv2 checkpoint directory: config.json, weights (.bin shards or safetensors), tokenizer files
    static std::unique_ptr<Engine> load(const std::string & dir, const EngineOptions & opt = {});
    ~Engine();

    // runs one request. `on_text` receives the answer as it is generated (never a broken UTF-8 character);
    // returning false stops generation. A request that extends the previous one (same image and regions,
    // the earlier turns unchanged) reuses its cached prefix instead of recomputing it.
    ChatResult chat(const ChatRequest & req, const std::function<bool(const std::string &)> & on_text = {});
    // detection / instance segmentation / grounding with Grounding DINO (needs use_gdino); `on_text`
    // streams a free-form answer
    DetectResult detect(const DetectRequest & req, const std::function<bool(const std::string &)> & on_text = {});
    // forget the cached conversation
    void reset();

    // one line: model, devices, dtypes, context
    std::string describe() const;

    struct Impl;

private:
    explicit Engine(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace visionllm
