#include "superlink/routing.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "visionllm/error.h"

namespace visionllm::superlink {

namespace {

constexpr Route k_routes[] = {Route::Det, Route::Seg, Route::Grd, Route::Pose, Route::Gen, Route::Edit};

int64_t lookup(const text::Tokenizer & tok, const std::string & s) {
    const int64_t id = tok.token_to_id(s);
    return id < 0 || id == tok.unk_id() ? -1 : id;
}

std::string trim(const std::string & s) {
    const size_t b = s.find_first_not_of(" \t\n\r"), e = s.find_last_not_of(" \t\n\r");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

bool starts_with(const std::string & s, const std::string & p) { return s.compare(0, p.size(), p) == 0; }

// the K ids after position i are the query ids of the route
bool queries_follow(const std::vector<int64_t> & ids, size_t i, const std::vector<int64_t> & q) {
    if (i + q.size() >= ids.size()) return false;
    return std::equal(q.begin(), q.end(), ids.begin() + int64_t(i) + 1);
}

std::string emb_suffix(int64_t k) {
    std::string s = "[EMB]";
    for (int64_t i = 2; i <= k; ++i) s += "[EMB" + std::to_string(i) + "]";
    return s;
}

std::string join(const std::vector<std::string> & v, const std::string & sep) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
    return s;
}

void check_classes(const std::vector<std::string> & classes, const char * what) {
    VLLM_CHECK(!classes.empty(), what, ": no classes given");
    for (size_t i = 0; i < classes.size(); ++i) {
        VLLM_CHECK(!trim(classes[i]).empty(), what, ": class ", i + 1, " is empty");
        VLLM_CHECK(classes[i].find('[') == std::string::npos && classes[i].find('<') == std::string::npos, what,
                   ": class ", i + 1, " ('", classes[i], "') holds '[' or '<', which would read as special tokens");
    }
}

}  // namespace

const char * route_token(Route r) {
    switch (r) {
        case Route::Det: return "[DET]";
        case Route::Seg: return "[SEG]";
        case Route::Grd: return "[GRD]";
        case Route::Pose: return "[POSE]";
        case Route::Gen: return "[GEN]";
        case Route::Edit: return "[EDIT]";
    }
    return "?";
}

const char * route_family(Route r) {
    switch (r) {
        case Route::Det:
        case Route::Seg:
        case Route::Grd: return "det";
        case Route::Pose: return "pose";
        case Route::Gen: return "gen";
        case Route::Edit: return "edit";
    }
    return "?";
}

RoutingTokens RoutingTokens::resolve(const text::Tokenizer & tok, int64_t num_embs, int64_t num_embs_gen,
                                     const std::string & where) {
    VLLM_CHECK(num_embs >= 1 && num_embs <= 64, where, ": num_embs must be in [1, 64], got ", num_embs);
    VLLM_CHECK(num_embs_gen >= 1 && num_embs_gen <= 4096, where, ": num_embs_gen must be in [1, 4096], got ",
               num_embs_gen);
    RoutingTokens t;
    t.num_embs = num_embs;
    t.num_embs_gen = num_embs_gen;
    t.det = lookup(tok, "[DET]");
    t.seg = lookup(tok, "[SEG]");
    t.grd = lookup(tok, "[GRD]");
    t.pose = lookup(tok, "[POSE]");
    t.gen = lookup(tok, "[GEN]");
    t.edit = lookup(tok, "[EDIT]");
    t.emb = lookup(tok, "[EMB]");
    VLLM_CHECK(t.emb >= 0, where, ": the tokenizer has no [EMB] token (added_tokens.json / tokenizer_config.json)");
    t.perception.push_back(t.emb);
    for (int64_t i = 2; i <= num_embs; ++i) {
        const std::string name = "[EMB" + std::to_string(i) + "]";
        const int64_t id = lookup(tok, name);
        VLLM_CHECK(id >= 0, where, ": the tokenizer has no ", name, " token, but num_embs is ", num_embs);
        VLLM_CHECK(id == t.emb + i - 1, where, ": ", name, " has id ", id, ", not ", t.emb + i - 1,
                   " (the model assumes [EMB]..[EMB", num_embs, "] are consecutive)");
        t.perception.push_back(id);
    }
    return t;
}

int64_t RoutingTokens::id_of(Route r) const {
    switch (r) {
        case Route::Det: return det;
        case Route::Seg: return seg;
        case Route::Grd: return grd;
        case Route::Pose: return pose;
        case Route::Gen: return gen;
        case Route::Edit: return edit;
    }
    return -1;
}

std::optional<Route> RoutingTokens::route_of(int64_t id) const {
    if (id < 0) return std::nullopt;
    for (Route r : k_routes)
        if (id_of(r) == id) return r;
    return std::nullopt;
}

int64_t RoutingTokens::num_queries(Route r) const {
    return r == Route::Gen || r == Route::Edit ? num_embs_gen : num_embs;
}

std::vector<int64_t> RoutingTokens::query_ids(Route r) const {
    if (r == Route::Gen || r == Route::Edit) return std::vector<int64_t>(size_t(num_embs_gen), emb);
    return perception;
}

bool RoutingTokens::is_query_id(int64_t id) const {
    return std::find(perception.begin(), perception.end(), id) != perception.end();
}

QueryTables QueryTables::load(const WeightView & root, int64_t hidden, int64_t num_embs, int64_t num_embs_gen,
                              c10::Device device, at::ScalarType dtype) {
    QueryTables q;
    auto get = [&](const char * name, int64_t k) {
        const std::string key = std::string("emb_embeddings_") + name + ".weight";
        if (!root.contains(key)) return at::Tensor();
        return root.get(key, {k, hidden}).to(device, dtype);
    };
    q.det = get("det", num_embs);
    q.pose = get("pose", num_embs);
    q.gen = get("gen", num_embs_gen);
    q.edit = get("edit", num_embs_gen);
    return q;
}

const at::Tensor & QueryTables::rows(Route r) const {
    switch (r) {
        case Route::Det:
        case Route::Seg:
        case Route::Grd: return det;
        case Route::Pose: return pose;
        case Route::Gen: return gen;
        case Route::Edit: return edit;
    }
    return det;
}

namespace {
const at::Tensor & checked_rows(const QueryTables & q, Route r) {
    const at::Tensor & t = q.rows(r);
    VLLM_CHECK(t.defined(), "the sequence holds ", route_token(r), " but the checkpoint has no emb_embeddings_",
               route_family(r) == std::string("det") ? "det" : route_family(r), " table");
    return t;
}
}  // namespace

std::vector<RoutingGroup> find_groups(const std::vector<int64_t> & ids, const RoutingTokens & rt) {
    std::vector<RoutingGroup> out;
    for (size_t i = 0; i < ids.size(); ++i) {
        const auto r = rt.route_of(ids[i]);
        if (!r) continue;
        const std::vector<int64_t> q = rt.query_ids(*r);
        if (!queries_follow(ids, i, q)) continue;
        RoutingGroup g;
        g.route = *r;
        g.token_pos = int64_t(i);
        for (size_t k = 1; k <= q.size(); ++k) g.query_pos.push_back(int64_t(i + k));
        out.push_back(std::move(g));
        i += q.size();
    }
    return out;
}

std::vector<RoutingGroup> overwrite_queries(at::Tensor & embeds, const std::vector<int64_t> & ids,
                                            const RoutingTokens & rt, const QueryTables & q) {
    at::Tensor e = embeds.dim() == 3 ? embeds[0] : embeds;
    VLLM_CHECK(e.dim() == 2 && e.size(0) == int64_t(ids.size()), "super link: embeddings ", embeds.sizes(),
               " do not match ", ids.size(), " ids");
    std::vector<RoutingGroup> groups = find_groups(ids, rt);
    for (const RoutingGroup & g : groups) {
        const at::Tensor & rows = checked_rows(q, g.route);
        e.narrow(0, g.query_pos.front(), int64_t(g.query_pos.size())).copy_(rows);
    }
    return groups;
}

Expanded insert_queries(const at::Tensor & embeds, const std::vector<int64_t> & ids, const RoutingTokens & rt,
                        const QueryTables & q) {
    const at::Tensor e = embeds.dim() == 3 ? embeds[0] : embeds;
    VLLM_CHECK(e.dim() == 2 && e.size(0) == int64_t(ids.size()), "super link: embeddings ", embeds.sizes(),
               " do not match ", ids.size(), " ids");
    Expanded out;
    std::vector<at::Tensor> pieces;
    int64_t start = 0;  // first row not yet copied
    for (size_t i = 0; i < ids.size(); ++i) {
        const auto r = rt.route_of(ids[i]);
        if (!r) continue;
        const std::vector<int64_t> qids = rt.query_ids(*r);
        const at::Tensor & rows = checked_rows(q, *r);
        // teacher-forced (the queries are in place: their rows become the table's) or generated (inserted)
        const bool in_place = queries_follow(ids, i, qids);
        pieces.push_back(e.narrow(0, start, int64_t(i) + 1 - start));
        pieces.push_back(rows);
        out.ids.insert(out.ids.end(), ids.begin() + start, ids.begin() + int64_t(i) + 1);
        out.ids.insert(out.ids.end(), qids.begin(), qids.end());
        start = int64_t(i) + 1 + (in_place ? int64_t(qids.size()) : 0);
        if (in_place) i += qids.size();
    }
    if (start < int64_t(ids.size())) {
        pieces.push_back(e.narrow(0, start, int64_t(ids.size()) - start));
        out.ids.insert(out.ids.end(), ids.begin() + start, ids.end());
    }
    out.embeds = (pieces.size() == 1 ? pieces[0] : at::cat(pieces, 0)).unsqueeze(0);
    out.groups = find_groups(out.ids, rt);
    return out;
}

std::vector<AnswerGroup> parse_answer(const text::Tokenizer & tok, const std::vector<int64_t> & answer_ids,
                                      const RoutingTokens & rt) {
    std::vector<AnswerGroup> out;
    size_t seg_start = 0;
    for (size_t i = 0; i < answer_ids.size(); ++i) {
        const auto r = rt.route_of(answer_ids[i]);
        if (!r) continue;
        std::vector<int64_t> seg;
        for (size_t k = seg_start; k < i; ++k)
            if (!rt.is_query_id(answer_ids[k])) seg.push_back(answer_ids[k]);
        std::string text = seg.empty() ? std::string() : tok.decode(seg, /*skip_special_tokens=*/true);
        if (out.empty()) {
            // the template's lead-in: "... results for <c>", "... location of <k>", "... it is <e>"
            const std::string hay = text + " ";
            size_t best = std::string::npos, len = 0;
            for (const char * m : {" for ", " of ", " is ", " are ", ": "}) {
                const size_t p = hay.rfind(m);
                if (p != std::string::npos && (best == std::string::npos || p + std::strlen(m) > best + len)) {
                    best = p;
                    len = std::strlen(m);
                }
            }
            if (best != std::string::npos) text = hay.substr(best + len);
        } else {
            // ", <c>" or " and <c>" after the previous group; a sentence in between: its last clause
            text = trim(text);
            for (const char * sep : {". ", ": "}) {
                const size_t p = text.rfind(sep);
                if (p != std::string::npos) text = text.substr(p + std::strlen(sep));
            }
            for (const char * m : {" for ", " of "}) {
                const size_t p = text.rfind(m);
                if (p != std::string::npos && out.back().route != *r) text = text.substr(p + std::strlen(m));
            }
            text = trim(text);
            if (starts_with(text, ",")) text = trim(text.substr(1));
            if (starts_with(text, "and ")) text = text.substr(4);
        }
        AnswerGroup g;
        g.route = *r;
        g.phrase = trim(text);
        out.push_back(std::move(g));
        seg_start = i + 1;
    }
    return out;
}

TaskPrompt detection_prompt(const std::vector<std::string> & classes, int64_t num_embs) {
    check_classes(classes, "detection");
    const std::string q = "[DET]" + emb_suffix(num_embs);
    return {"Can you analyze the image and identify the " + join(classes, ", ") + " present?",
            "Yes, here are the results for " + join(classes, q + ", ") + q + " in the image."};
}

TaskPrompt segmentation_prompt(const std::vector<std::string> & classes, int64_t num_embs) {
    check_classes(classes, "segmentation");
    std::string lower = join(classes, ", ");
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    const std::string q = "[SEG]" + emb_suffix(num_embs);
    return {"Could you aid me in generating unique masks for every category present in " + lower + " in this image?",
            "Yes, here are the results for " + join(classes, q + ", ") + q + " in the image."};
}

TaskPrompt grounding_prompt(const std::string & expression, int64_t num_embs) {
    check_classes({expression}, "grounding");
    return {"Where can we locate the " + expression + " in the image?",
            "Yes, it is [GRD]" + emb_suffix(num_embs) + "."};
}

}  // namespace visionllm::superlink
