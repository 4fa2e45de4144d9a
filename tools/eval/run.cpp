// visionllm-eval run: runs a checkpoint over a COCO-format dataset with the reference evaluation's prompts
// (visionllmv2.md §1.4 c/d, §8-§9), writes its results as COCO results JSON, then scores them.
//
// - det / segm: one templated Engine::detect pass per image with every category of the dataset in file order
//   ("Can you analyze the image and identify the {c1}, ..., {cN} present?"), top-100 over queries x classes,
//   threshold 0 (keep all), instance masks for segm; labels map back to the dataset's category ids.
// - pose: person plus the dataset's keypoint names; waits for the UniPose decoder (a clear error for now).
//
// Resumable: every finished image is appended to `<output>.partial.jsonl` (a header line naming the run, then
// {"image_id", "results"} per image, each flushed and fsync'ed), so a kill loses at most the image in progress.
// The same command resumes from it; a journal written for another run is an error (--fresh discards it). The
// final results file (one result per line, in ground-truth image order) is written atomically and does not
// depend on whether or where the run was interrupted: every image's results go through the journal's text.
// Ctrl-C finishes the current image, then stops (exit 130); a second Ctrl-C exits at once.
//
// Testing hook: the environment variable VISIONLLM_EVAL_STOP_AFTER=N makes the run raise(SIGINT) on itself
// after N images of this run, as if the user had pressed Ctrl-C then (tests/cli/eval_run_test.cpp).
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <chrono>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/args.h"
#include "common/llm_flags.h"
#include "eval/coco.h"
#include "eval/commands.h"
#include "io/json_file.h"
#include "visionllm/engine.h"
#include "visionllm/error.h"

namespace visionllm::cli {

namespace {

using ojson = nlohmann::ordered_json;

// ---- Ctrl-C -------------------------------------------------------------------------------------------

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_sigint(int) {
    if (g_interrupted) {
        static const char msg[] = "\ninterrupted again: exiting now\n";
        ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
        (void) r;
        _exit(130);
    }
    g_interrupted = 1;
    static const char msg[] = "\ninterrupt: finishing the current image (Ctrl-C again to exit at once)\n";
    ssize_t r = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void) r;
}

// installs on_sigint for SIGINT while alive
class SigintGuard {
public:
    SigintGuard() {
        g_interrupted = 0;
        struct sigaction sa {};
        sa.sa_handler = on_sigint;
        sigemptyset(&sa.sa_mask);
        sa.sa_flags = SA_RESTART;
        sigaction(SIGINT, &sa, &old_);
    }
    ~SigintGuard() { sigaction(SIGINT, &old_, nullptr); }
    SigintGuard(const SigintGuard &) = delete;
    SigintGuard & operator=(const SigintGuard &) = delete;

private:
    struct sigaction old_ {};
};

// ---- files --------------------------------------------------------------------------------------------


// the absolute, resolved path (the path itself when it cannot be resolved)
std::string absolute(const std::string & p) {
    char buf[PATH_MAX];
    return realpath(p.c_str(), buf) ? std::string(buf) : p;
}

// writes `text` to `path` durably and atomically: a temporary file next to it, fsync, rename
void write_atomically(const std::string & path, const std::string & text) {
    const std::string tmp = path + ".tmp";
    std::FILE * f = std::fopen(tmp.c_str(), "wb");
    VLLM_CHECK(f, tmp, ": cannot create the file");
    const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size() && std::fflush(f) == 0 &&
                    fsync(fileno(f)) == 0;
    const bool closed = std::fclose(f) == 0;
    if (!ok || !closed) {
        std::remove(tmp.c_str());
        fail(tmp, ": write failed (disk full?)");
    }
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
        std::remove(tmp.c_str());
        fail(path, ": cannot rename ", tmp, " to it");
    }
}

// the journal, appended to one line at a time; each line reaches the disk before the next image starts
class Journal {
public:
    // truncate: start a new file; otherwise append to the existing one
    Journal(const std::string & path, bool truncate) : path_(path) {
        f_ = std::fopen(path.c_str(), "ab");
        VLLM_CHECK(f_, path, ": cannot open the run's journal for writing");
        if (flock(fileno(f_), LOCK_EX | LOCK_NB) != 0) {
            std::fclose(f_);
            f_ = nullptr;
            fail(path, ": another visionllm-eval run is writing this journal (the same -o twice at once?)");
        }
        VLLM_CHECK(!truncate || ftruncate(fileno(f_), 0) == 0, path, ": cannot empty the journal");
    }
    ~Journal() {
        if (f_) std::fclose(f_);
    }
    Journal(const Journal &) = delete;
    Journal & operator=(const Journal &) = delete;
    void append(const std::string & line) {
        VLLM_CHECK(std::fwrite(line.data(), 1, line.size(), f_) == line.size() && std::fputc('\n', f_) != EOF &&
                       std::fflush(f_) == 0,
                   path_, ": write failed (disk full?)");
        fsync(fileno(f_));
    }
    void close() {
        if (f_) std::fclose(f_);
        f_ = nullptr;
    }

private:
    std::string path_;
    std::FILE * f_ = nullptr;
};

// ---- progress -----------------------------------------------------------------------------------------

std::string hms(double secs) {
    if (!(secs >= 0) || secs > 1e8) return "--:--:--";
    const long long s = (long long) (secs + 0.5);
    char buf[48];
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
    return buf;
}

// "[ 12/5000] 0.83 img/s  ETA 1:40:12  image 000000397133.jpg": on a terminal one updating line naming the image
// in progress, otherwise a line per finished image. The rate counts this run's images only (resumed ones took
// no time).
class RunProgress {
public:
    RunProgress(size_t total, size_t done) : total_(total), done_(done), tty_(isatty(STDERR_FILENO) != 0) {
        width_ = int(std::to_string(total).size());
        start_ = std::chrono::steady_clock::now();
    }
    void image_start(const std::string & name) {
        if (tty_) draw(name);
    }
    void image_done(const std::string & name) {
        ++done_;
        ++run_;
        if (!tty_ || done_ == total_) draw(name);
    }
    // ends the updating line (before other messages)
    void finish() {
        if (line_open_) std::fprintf(stderr, "\n");
        line_open_ = false;
    }

private:
    void draw(const std::string & name) {
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
        const double rate = secs > 0 ? double(run_) / secs : 0;
        const double eta = rate > 0 ? double(total_ - done_) / rate : -1;
        std::fprintf(stderr, "%s[%*zu/%zu] %.2f img/s  ETA %s  image %s%s", tty_ ? "\r" : "", width_, done_, total_,
                     rate, hms(eta).c_str(), name.c_str(), tty_ ? "\x1b[K" : "\n");
        std::fflush(stderr);
        line_open_ = tty_;
    }
    size_t total_, done_, run_ = 0;
    bool tty_, line_open_ = false;
    int width_ = 1;
    std::chrono::steady_clock::time_point start_;
};

// ---- the request -------------------------------------------------------------------------------------

enum class Task { Det, Segm, Pose };

Task parse_task(const std::string & s) {
    if (s == "det") return Task::Det;
    if (s == "segm") return Task::Segm;
    if (s == "pose") return Task::Pose;
    fail("--task must be det, segm or pose, not '", s, "'");
}

eval::IouType iou_type_of(Task t) {
    return t == Task::Det ? eval::IouType::Bbox : t == Task::Segm ? eval::IouType::Segm : eval::IouType::Keypoints;
}

// the pose prompt's pieces (visionllmv2.md §1.4 d): the object class "person" and the dataset's keypoint names
// ("left_eye" -> "left eye") in its order, from the person category (or the first one with keypoints)
struct PosePrompt {
    std::vector<std::string> classes;
    std::vector<std::string> keypoints;
    int64_t category_id = 0;
};

PosePrompt pose_prompt(const eval::CocoDataset & gt, eval::Flavor flavor) {
    const eval::CocoCategory * cat = nullptr;
    for (const auto & c : gt.categories)
        if (c.name == "person" && !c.keypoints.empty()) cat = &c;
    for (const auto & c : gt.categories)
        if (!cat && !c.keypoints.empty()) cat = &c;
    VLLM_CHECK(cat, gt.source, ": no category has a \"keypoints\" list (--task pose needs the keypoint names)");
    const size_t want = flavor == eval::Flavor::CrowdPose ? 14 : 17;
    VLLM_CHECK(cat->keypoints.size() == want, gt.source, ": category '", cat->name, "' has ", cat->keypoints.size(),
               " keypoints; ", flavor == eval::Flavor::CrowdPose ? "CrowdPose" : "COCO", " has ", want,
               " (choose the dataset with --dataset)");
    PosePrompt p;
    p.classes = {"person"};
    p.category_id = cat->id;
    for (std::string k : cat->keypoints) {
        for (char & ch : k)
            if (ch == '_') ch = ' ';
        p.keypoints.push_back(k);
    }
    return p;
}

// the ground truth restricted to its first n images (and their annotations), for scoring a --limit run
eval::CocoDataset first_images(const nlohmann::json & j, const eval::CocoDataset & full, size_t n) {
    nlohmann::json s = nlohmann::json::object();
    for (auto it = j.begin(); it != j.end(); ++it)
        if (it.key() != "images" && it.key() != "annotations") s[it.key()] = it.value();
    s["images"] = nlohmann::json::array();
    std::unordered_set<int64_t> ids;
    for (size_t i = 0; i < n; ++i) {
        s["images"].push_back(j["images"][i]);
        ids.insert(full.images[i].id);
    }
    s["annotations"] = nlohmann::json::array();
    for (const auto & a : j.value("annotations", nlohmann::json::array()))
        if (a.is_object() && a.contains("image_id") && a["image_id"].is_number_integer() &&
            ids.count(a["image_id"].get<int64_t>()))
            s["annotations"].push_back(a);
    return eval::coco_from_json(s, full.source);
}

// one image's results as COCO results objects, in the detector's order (descending score). Boxes and scores
// are the float32 outputs as doubles, w = x1 - x0 in double, as mmdet's xyxy2xywh / results2json write them.
ojson detections_json(const DetectResult & r, const eval::CocoImage & img, const eval::CocoDataset & gt, bool masks) {
    ojson out = ojson::array();
    for (const Detection & d : r.detections) {
        VLLM_CHECK(d.label >= 0 && size_t(d.label) < gt.categories.size(), "image ", img.file_name,
                   ": detection label ", d.label, " outside the ", gt.categories.size(), " classes");
        ojson o;
        o["image_id"] = img.id;
        o["category_id"] = gt.categories[size_t(d.label)].id;
        o["bbox"] = {double(d.box[0]), double(d.box[1]), double(d.box[2]) - double(d.box[0]),
                     double(d.box[3]) - double(d.box[1])};
        o["score"] = double(d.score);
        if (masks) {
            VLLM_CHECK(!d.mask_rle.empty(), "image ", img.file_name, ": the decoder gave no mask");
            o["segmentation"] = {{"size", {r.height, r.width}}, {"counts", d.mask_rle}};
        }
        out.push_back(std::move(o));
    }
    return out;
}

// a journal line's results, checked; false when the line is damaged (it and what follows are redone)
bool parse_journal_line(const std::string & line, const std::unordered_map<int64_t, size_t> & pos,
                        const std::vector<bool> & have, size_t * index) {
    ojson j = ojson::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("image_id") || !j["image_id"].is_number_integer() ||
        !j.contains("results") || !j["results"].is_array())
        return false;
    const auto it = pos.find(j["image_id"].get<int64_t>());
    if (it == pos.end() || have[it->second]) return false;
    *index = it->second;
    return true;
}

}  // namespace

int cmd_run(int argc, char ** argv) {
    Args a("visionllm-eval run --model DIR --images DIR --ann GT.json --task det|segm|pose [--dataset coco|crowdpose] "
           "[--limit N] -o results.json [--json] [--fresh]",
           "Runs a VisionLLMv2 checkpoint over a COCO-format dataset with the reference evaluation's prompts\n"
           "(det / segm: every category of the dataset in its order, top-100 detections per image; pose: person\n"
           "and the keypoint names), writes COCO results JSON, then scores it as `visionllm-eval score` does.\n"
           "Progress goes to stderr. Finished images are kept in <output>.partial.jsonl as the run goes: after an\n"
           "interruption (Ctrl-C, a kill) the same command resumes without redoing them; --fresh starts over.\n"
           "With --limit, only the first N images of the annotation file are run and scored.");
    a.add("-m,--model", "DIR", "VisionLLMv2 checkpoint directory (with use_gdino for det / segm)");
    a.add("--images", "DIR", "the dataset's image folder (file_name is relative to it)");
    a.add("--ann", "GT.json", "COCO-format ground truth (images, categories, annotations)");
    a.add("--task", "T", "det (bbox AP), segm (bbox from masks: segm AP) or pose (keypoints AP)");
    a.add("--dataset", "D", "coco or crowdpose (the scoring flavour and the keypoint count)", "coco");
    a.add("--limit", "N", "run the first N images only (0: all)", "0");
    a.add("-o,--output", "FILE", "the results file (COCO results JSON)");
    a.add("--max-tiles", "N", "anyres tiles at most for the LLM's view of the image", "4");
    a.add_switch("--json", "print the scores as one JSON object (as `visionllm-eval score --json`)");
    a.add_switch("--fresh", "discard the journal of an earlier, unfinished run and start over");
    add_llm_flags(a);
    add_engine_dtype_flags(a);
    if (!a.parse(argc, argv)) return 0;

    // ---- the request, checked before anything slow
    const std::string model_dir = a.require("--model");
    const std::string images_dir = a.require("--images");
    const std::string ann = a.require("--ann");
    const std::string output = a.require("--output");
    const Task task = parse_task(a.require("--task"));
    const std::string dataset = a.get("--dataset");
    const eval::Flavor flavor = eval::parse_flavor(dataset);
    const long long limit = a.get_int("--limit");
    VLLM_CHECK(limit >= 0, "--limit must not be negative, got ", limit);
    const int64_t max_tiles = a.get_int("--max-tiles");
    const bool json_out = a.on("--json");
    long long stop_after = 0;  // the testing hook (see the header comment)
    if (const char * s = std::getenv("VISIONLLM_EVAL_STOP_AFTER"); s && *s) {
        char * end = nullptr;
        stop_after = std::strtoll(s, &end, 10);
        VLLM_CHECK(*end == '\0' && stop_after >= 1, "VISIONLLM_EVAL_STOP_AFTER must be a positive integer, got '", s,
                   "'");
    }

    const nlohmann::json ann_json = io::read_json_file(ann);
    eval::CocoDataset gt = eval::coco_from_json(ann_json, ann);
    VLLM_CHECK(!gt.categories.empty(), ann, ": no categories (the prompt's class list comes from them)");
    const size_t total = limit > 0 && size_t(limit) < gt.images.size() ? size_t(limit) : gt.images.size();
    VLLM_CHECK(total > 0, ann, ": no images");
    if (total < gt.images.size()) gt = first_images(ann_json, gt, total);

    VLLM_CHECK(io::dir_exists(images_dir), "--images: ", images_dir, " is not a directory");
    const size_t slash = output.rfind('/');
    const std::string out_dir = slash == std::string::npos ? "." : slash == 0 ? "/" : output.substr(0, slash);
    VLLM_CHECK(io::dir_exists(out_dir), "-o: the folder of ", output, " does not exist");
    std::vector<std::string> files(total);
    for (size_t i = 0; i < total; ++i) {
        const eval::CocoImage & img = gt.images[i];
        VLLM_CHECK(!img.file_name.empty(), ann, ": image ", img.id, " has no file_name");
        files[i] = images_dir + "/" + img.file_name;
        VLLM_CHECK(io::file_exists(files[i]), files[i], ": image file not found (image ", img.id, " of ", ann, ")");
    }

    std::vector<std::string> classes;
    for (const auto & c : gt.categories) classes.push_back(c.name);
    if (task == Task::Pose) {
        const PosePrompt pp = pose_prompt(gt, flavor);
        (void) pp;  // the prompt's pieces are ready; the decoder is not
        fail("--task pose needs the UniPose decoder, which this build does not have yet");
    }

    // ---- the journal: resume or start
    const std::string journal_path = output + ".partial.jsonl";
    ojson header;
    header["visionllm_eval_run"] = 1;
    header["model"] = absolute(model_dir);
    header["ann"] = absolute(ann);
    header["task"] = a.get("--task");
    header["dataset"] = dataset;
    header["limit"] = limit;
    const std::string header_line = header.dump();

    std::unordered_map<int64_t, size_t> pos;
    for (size_t i = 0; i < total; ++i) pos[gt.images[i].id] = i;
    std::vector<std::string> lines(total);  // each image's journal line
    std::vector<bool> have(total, false);
    size_t done = 0;
    bool resume = false;
    if (a.on("--fresh") && io::file_exists(journal_path)) {
        VLLM_CHECK(std::remove(journal_path.c_str()) == 0, journal_path, ": cannot remove the journal");
        std::fprintf(stderr, "--fresh: discarded %s\n", journal_path.c_str());
    }
    if (io::file_exists(journal_path)) {
        const std::string text = io::read_text_file(journal_path);
        const size_t nl = text.find('\n');
        const nlohmann::json h =
            nl == std::string::npos ? nlohmann::json() : nlohmann::json::parse(text.substr(0, nl), nullptr, false);
        if (nl == std::string::npos || h.is_discarded() || !h.is_object() || !h.contains("visionllm_eval_run")) {
            std::fprintf(stderr, "%s: no complete header line; starting over\n", journal_path.c_str());
        } else if (h != nlohmann::json::parse(header_line) && nl + 1 == text.size()) {
            std::fprintf(stderr, "%s: no finished images (another run's header); starting over\n",
                         journal_path.c_str());
        } else {
            VLLM_CHECK(h == nlohmann::json::parse(header_line), journal_path,
                       ": an unfinished run with other settings left this journal (", h.dump(),
                       "; this run is ", header_line,
                       "). Pass --fresh to discard it and start over, or choose another -o");
            resume = true;
            size_t b = nl + 1, good_end = b, dropped = 0;
            while (b < text.size()) {
                const size_t e = text.find('\n', b);
                size_t index = 0;
                if (e == std::string::npos || !parse_journal_line(text.substr(b, e - b), pos, have, &index)) {
                    for (size_t k = b; k < text.size(); ++k) dropped += text[k] == '\n';
                    dropped += text.back() != '\n';
                    break;
                }
                lines[index] = text.substr(b, e - b);
                have[index] = true;
                ++done;
                b = good_end = e + 1;
            }
            if (good_end < text.size()) {
                VLLM_CHECK(truncate(journal_path.c_str(), off_t(good_end)) == 0, journal_path,
                           ": cannot drop its damaged tail");
                std::fprintf(stderr, "%s: dropped %zu damaged line%s at its end (redone)\n", journal_path.c_str(),
                             dropped, dropped == 1 ? "" : "s");
            }
            std::fprintf(stderr, "resuming: %zu of %zu images done (%s)\n", done, total, journal_path.c_str());
        }
    }

    // ---- the run
    SigintGuard sigint;
    if (done < total) {
        auto engine = Engine::load(model_dir, engine_options(a));
        std::fprintf(stderr, "%s\n", engine->describe().c_str());
        Journal journal(journal_path, !resume);  // after the model loaded: a bad --model leaves no journal
        if (!resume) journal.append(header_line);
        std::fprintf(stderr, "%s: %zu images, %zu classes, task %s, %zu to run\n", ann.c_str(), total, classes.size(),
                     a.get("--task").c_str(), total - done);
        RunProgress progress(total, done);
        bool size_warned = false;
        long long ran = 0;
        for (size_t i = 0; i < total && !g_interrupted; ++i) {
            if (have[i]) continue;
            const eval::CocoImage & img = gt.images[i];
            progress.image_start(img.file_name);
            DetectRequest req;
            req.image = ImageInput::from_file(files[i]);
            req.task = "det";
            req.classes = classes;
            req.options.topk = 100;
            // the reference keeps score > 0 (all of the top-100 in practice); the engine takes thresholds in [0, 1]
            req.options.threshold = 0.f;
            req.options.masks = task == Task::Segm;
            req.max_tiles = max_tiles;
            const DetectResult r = engine->detect(req);
            if (!size_warned && (r.width != img.width || r.height != img.height)) {
                progress.finish();
                std::fprintf(stderr, "warning: %s is %lldx%lld but %s says %lldx%lld (masks take the image's size)\n",
                             files[i].c_str(), (long long) r.width, (long long) r.height, ann.c_str(),
                             (long long) img.width, (long long) img.height);
                size_warned = true;
            }
            ojson line;
            line["image_id"] = img.id;
            line["results"] = detections_json(r, img, gt, task == Task::Segm);
            lines[i] = line.dump();
            journal.append(lines[i]);
            have[i] = true;
            ++done;
            progress.image_done(img.file_name);
            if (stop_after > 0 && ++ran == stop_after) std::raise(SIGINT);
        }
        progress.finish();
        journal.close();
        if (done < total) {
            std::fprintf(stderr, "interrupted after %zu/%zu images; run the same command again to resume\n", done,
                         total);
            return 130;
        }
    }

    // ---- the results file, from the journal's text (the same bytes however the run went)
    std::string text = "[";
    size_t n_results = 0;
    for (size_t i = 0; i < total; ++i) {
        const ojson j = ojson::parse(lines[i]);
        for (const auto & r : j["results"]) {
            text += n_results++ ? ",\n" : "\n";
            text += r.dump();
        }
    }
    text += n_results ? "\n]\n" : "]\n";
    write_atomically(output, text);
    std::remove(journal_path.c_str());
    std::fprintf(stderr, "wrote %s: %zu results for %zu images\n", output.c_str(), n_results, total);

    const nlohmann::json results = nlohmann::json::parse(text);
    score_and_print(gt, eval::results_from_json(gt, results, output), iou_type_of(task), flavor, json_out,
                    int(a.get_int("--threads")));
    return 0;
}

}  // namespace visionllm::cli
