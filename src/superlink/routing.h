// The super link (visionllmv2.md §5): routing tokens and their learned queries.
//
// When the LLM's sequence holds a routing token ([DET] [SEG] [GRD] [POSE] [GEN] [EDIT]), the K rows after it
// are the learned query embeddings of that family (emb_embeddings_det for [DET]/[SEG]/[GRD], _pose, _gen,
// _edit; K = num_embs = 4 for perception, num_embs_gen = 64 for generation), with ids [EMB]..[EMB{K}] for
// perception and [EMB] x 64 for generation. The final post-norm LLM hidden states at those rows are what the
// decoders read. Two ways in, as the reference (§5.1):
//   - teacher forcing (the official evaluations): the text already holds "[DET][EMB][EMB2][EMB3][EMB4]"; the
//     K rows after each routing token are overwritten by the query table (`overwrite_queries`);
//   - generation: the model emits "[DET]" alone; the K queries are inserted right after it in the same step
//     (`queries_for` feeds llm::GenerateOptions::insert_after) and the next token comes from the last query.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "text/tokenizer.h"
#include "visionllm/checkpoint.h"

namespace visionllm::superlink {

enum class Route { Det, Seg, Grd, Pose, Gen, Edit };
const char * route_token(Route r);  // "[DET]", ...
// the decoder family of a route: "det" (Grounding DINO: [DET] [SEG] [GRD]), "pose", "gen", "edit"
const char * route_family(Route r);

// the ids, read from the tokenizer files (never hard-coded)
struct RoutingTokens {
    int64_t det = -1, seg = -1, grd = -1, pose = -1, gen = -1, edit = -1;
    int64_t emb = -1;                 // [EMB]
    int64_t num_embs = 4;             // K for perception
    int64_t num_embs_gen = 64;        // K for [GEN]/[EDIT]
    std::vector<int64_t> perception;  // [EMB], [EMB2], ... [EMB{num_embs}] (consecutive ids, as the reference assumes)

    // resolves every token; `where` names the model in errors. A missing routing token is an error only
    // when it is used; [EMB]..[EMB{num_embs}] must exist and be consecutive.
    static RoutingTokens resolve(const text::Tokenizer & tok, int64_t num_embs, int64_t num_embs_gen,
                                 const std::string & where);
    std::optional<Route> route_of(int64_t id) const;
    int64_t id_of(Route r) const;
    int64_t num_queries(Route r) const;               // K
    std::vector<int64_t> query_ids(Route r) const;    // the K ids that follow the routing token
    bool is_query_id(int64_t id) const;               // [EMB]..[EMB{num_embs}]
};

// the learned query tables emb_embeddings_{det,pose,gen,edit} ([K, hidden] each; undefined when the
// checkpoint lacks one), on the LLM's device and dtype
struct QueryTables {
    at::Tensor det, pose, gen, edit;
    static QueryTables load(const WeightView & root, int64_t hidden, int64_t num_embs, int64_t num_embs_gen,
                            c10::Device device, at::ScalarType dtype);
    const at::Tensor & rows(Route r) const;
};

// one routing token of a sequence and its K query rows
struct RoutingGroup {
    Route route = Route::Det;
    int64_t token_pos = 0;              // position of the routing token
    std::vector<int64_t> query_pos;     // positions of its K queries
};

// Teacher forcing (§5.1, first case): for every routing token whose next K ids are its query ids, the K
// embedding rows ([1, T, hidden] or [T, hidden]) become the query table rows. Returns the groups in order.
// A routing token not followed by its queries is left alone (it is plain text to the reference too only
// when [EMB] appears nowhere; mixing both forms in one prompt is refused).
std::vector<RoutingGroup> overwrite_queries(at::Tensor & embeds, const std::vector<int64_t> & ids,
                                            const RoutingTokens & rt, const QueryTables & q);

// Insertion (§5.1, second case) over a whole prompt: every routing token not already followed by its query
// ids gets them (ids and rows) inserted after it; done right to left, so the positions stay right (the
// reference's multi-insert position bug is not reproduced). Returns the new ids/rows and the groups.
struct Expanded {
    std::vector<int64_t> ids;
    at::Tensor embeds;  // [1, T', hidden]
    std::vector<RoutingGroup> groups;
};
Expanded insert_queries(const at::Tensor & embeds, const std::vector<int64_t> & ids, const RoutingTokens & rt,
                        const QueryTables & q);

// the groups of a sequence whose queries are already in place (ids after overwrite/insert)
std::vector<RoutingGroup> find_groups(const std::vector<int64_t> & ids, const RoutingTokens & rt);

// Phrases for the routing tokens of an answer (no official implementation: visionllmv2.md §1.4 "Parsing
// output"): the text between the previous routing token (or the answer's start) and each routing token,
// without the ", " / " and " joiners; for the first one, the part after the template's lead-in ("... the
// results for ", "... location of ", "... it is "). An empty phrase stays empty (e.g. grounding's
// "Yes, it is [GRD]": the caller names it from the question).
struct AnswerGroup {
    Route route = Route::Det;
    std::string phrase;
};
std::vector<AnswerGroup> parse_answer(const text::Tokenizer & tok, const std::vector<int64_t> & answer_ids,
                                      const RoutingTokens & rt);

// The evaluation's teacher-forced templates (first question/answer of datasets/coco_llava.py,
// refcoco_llava.py, ade20k_llava.py; §1.4 c). `classes` in prompt order.
struct TaskPrompt {
    std::string question;  // without "<image>\n"
    std::string answer;    // with the routing and query tokens
};
TaskPrompt detection_prompt(const std::vector<std::string> & classes, int64_t num_embs);    // [DET]
TaskPrompt segmentation_prompt(const std::vector<std::string> & classes, int64_t num_embs); // [SEG]
TaskPrompt grounding_prompt(const std::string & expression, int64_t num_embs);             // [GRD]

}  // namespace visionllm::superlink
