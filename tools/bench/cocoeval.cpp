// visionllm-bench cocoeval: the native COCOeval against pycocotools on a synthetic COCO-val2017-sized input
// (5,000 images, 36,000 ground-truth boxes over COCO's 80 category ids, 100 detections per image), both timed in
// the same run on the same files; the stats must agree.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <array>
#include <random>
#include <string>
#include <unistd.h>

#include "common/args.h"
#include "eval/cocoeval.h"
#include "io/json_file.h"
#include "io/writers.h"
#include "visionllm/error.h"

namespace visionllm::cli {

namespace {

using json = nlohmann::ordered_json;

const int kCocoIds[80] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21,
                          22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44,
                          46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 65,
                          67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90};

double r2(double v) { return std::round(v * 100) / 100; }

// ground truth and results in COCO's formats, deterministic for a seed
void make_dataset(int64_t images, int64_t gt_boxes, int64_t dets_per_image, uint64_t seed, const std::string & gt_path,
                  const std::string & dt_path) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> U(0, 1);
    std::normal_distribution<double> N(0, 1);
    json gt = {{"info", {{"description", "visionllm-bench cocoeval synthetic set"}}}};
    json ims = json::array(), cats = json::array(), anns = json::array(), dts = json::array();
    for (int k = 0; k < 80; ++k) cats.push_back({{"id", kCocoIds[k]}, {"name", "class" + std::to_string(kCocoIds[k])}});
    std::vector<std::vector<std::array<double, 5>>> per_image(static_cast<size_t>(images));  // x, y, w, h, category
    for (int64_t i = 0; i < images; ++i) ims.push_back({{"id", 100000 + i * 7}, {"width", 640}, {"height", 480},
                                                      {"file_name", std::to_string(i) + ".jpg"}});
    for (int64_t a = 0; a < gt_boxes; ++a) {
        const int64_t i = int64_t(U(rng) * double(images)) % images;
        const double area = std::exp(std::log(16.0) + U(rng) * (std::log(200000.0) - std::log(16.0)));
        const double aspect = std::exp(N(rng) * 0.5);
        const double w = std::min(639.0, std::sqrt(area * aspect)), h = std::min(479.0, std::sqrt(area / aspect));
        const double x = U(rng) * (640 - w), y = U(rng) * (480 - h);
        const int cat = kCocoIds[std::min<int>(79, int(std::pow(U(rng), 1.5) * 80))];
        const bool crowd = U(rng) < 0.01;
        per_image[size_t(i)].push_back({r2(x), r2(y), r2(w), r2(h), double(cat)});
        anns.push_back({{"id", a + 1}, {"image_id", 100000 + i * 7}, {"category_id", cat},
                        {"bbox", {r2(x), r2(y), r2(w), r2(h)}}, {"area", r2(r2(w) * r2(h) * 0.8)},
                        {"iscrowd", crowd ? 1 : 0}});
    }
    for (int64_t i = 0; i < images; ++i) {
        const auto & objs = per_image[size_t(i)];
        for (int64_t d = 0; d < dets_per_image; ++d) {
            double x, y, w, h, score;
            int cat;
            if (!objs.empty() && U(rng) < 0.6) {  // a jittered copy of a ground-truth box
                const auto & o = objs[size_t(int64_t(U(rng) * double(objs.size())) % int64_t(objs.size()))];
                const double j = 0.15 * U(rng);
                x = o[0] + N(rng) * j * o[2];
                y = o[1] + N(rng) * j * o[3];
                w = std::max(1.0, o[2] * (1 + N(rng) * j));
                h = std::max(1.0, o[3] * (1 + N(rng) * j));
                cat = U(rng) < 0.85 ? int(o[4]) : kCocoIds[int(U(rng) * 80) % 80];
                score = std::min(0.999, std::max(0.001, 0.9 - 3 * j + 0.2 * N(rng)));
            } else {  // a false positive
                w = 8 + U(rng) * 300;
                h = 8 + U(rng) * 300;
                x = U(rng) * (640 - w);
                y = U(rng) * (480 - h);
                cat = kCocoIds[int(U(rng) * 80) % 80];
                score = 0.001 + 0.5 * U(rng) * U(rng);
            }
            dts.push_back({{"image_id", 100000 + i * 7}, {"category_id", cat}, {"bbox", {r2(x), r2(y), r2(w), r2(h)}},
                           {"score", std::round(score * 1e4) / 1e4}});
        }
    }
    gt["images"] = std::move(ims);
    gt["categories"] = std::move(cats);
    gt["annotations"] = std::move(anns);
    io::write_text_file(gt_path, gt.dump());
    io::write_text_file(dt_path, dts.dump());
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int bench_cocoeval(int argc, char ** argv) {
    Args a("visionllm-bench cocoeval [--images N] [--gt N] [--dets N] [-t N] [-r N] [--baseline CMD] [--dir DIR] [--json]",
           "Scores a synthetic COCO-val2017-sized bbox set (5,000 images, 36,000 ground-truth boxes, 100 detections\n"
           "per image: 500,000 results) with the native COCOeval: loading the two JSON files, then evaluate +\n"
           "accumulate + summarize. --baseline runs pycocotools on the same files in the same run, e.g.\n"
           "  --baseline '.venv/bin/python tools/bench/cocoeval_pycocotools.py'\n"
           "and checks that the 12 stats agree (to 1e-9).");
    a.add("--images", "N", "images", "5000");
    a.add("--gt", "N", "ground-truth boxes", "36000");
    a.add("--dets", "N", "detections per image", "100");
    a.add("--seed", "N", "random seed of the synthetic set", "0");
    a.add("-t,--threads", "N", "threads; 0: all cores", "0");
    a.add("-r,--reps", "N", "repetitions of the native run (the best is kept)", "3");
    a.add("--baseline", "CMD", "command starting tools/bench/cocoeval_pycocotools.py (see above)");
    a.add("--dir", "DIR", "where the synthetic files go (kept); default: a temporary folder, removed");
    a.add_switch("--json", "print JSON");
    if (!a.parse(argc, argv)) return 0;
    const long long images = a.get_int("--images"), gt_boxes = a.get_int("--gt"), dets = a.get_int("--dets");
    VLLM_CHECK(images >= 1 && gt_boxes >= 0 && dets >= 0, "--images must be >= 1, --gt and --dets >= 0");
    const int threads = int(a.get_int("--threads")), reps = int(std::max(1LL, a.get_int("--reps")));
    std::string dir = a.get("--dir");
    const bool temp = dir.empty();
    if (temp) {
        char tmpl[] = "/tmp/visionllm-bench-cocoeval-XXXXXX";
        VLLM_CHECK(::mkdtemp(tmpl), "cannot create a temporary folder in /tmp");
        dir = tmpl;
    }
    const std::string gt_path = dir + "/gt.json", dt_path = dir + "/dt.json";
    const bool quiet = a.on("--json");
    if (!quiet) std::fprintf(stderr, "writing the synthetic set to %s ...\n", dir.c_str());
    make_dataset(images, gt_boxes, dets, uint64_t(a.get_int("--seed")), gt_path, dt_path);

    double best_load = 1e30, best_eval = 1e30, best_total = 1e30;
    eval::EvalResult result;
    for (int r = 0; r < reps; ++r) {
        const double t0 = now();
        const eval::CocoDataset gt = eval::load_coco(gt_path);
        const auto dt = eval::load_results(gt, dt_path);
        const double t1 = now();
        result = eval::evaluate_coco(gt, dt, eval::IouType::Bbox, eval::Flavor::Coco, threads);
        const double t2 = now();
        best_load = std::min(best_load, t1 - t0);
        best_eval = std::min(best_eval, t2 - t1);
        best_total = std::min(best_total, t2 - t0);
        if (!quiet) std::fprintf(stderr, "native run %d: load %.2f s, eval %.2f s\n", r + 1, t1 - t0, t2 - t1);
    }
    json out = {{"bench", "cocoeval"}, {"images", images}, {"gt", gt_boxes}, {"dets", images * dets},
                {"threads", threads}, {"native", {{"load_s", best_load}, {"eval_s", best_eval}, {"total_s", best_total}}},
                {"stats", result.stats}};
    if (a.has("--baseline")) {
        const std::string cmd = a.get("--baseline") + " --ann '" + gt_path + "' --results '" + dt_path + "'";
        if (!quiet) std::fprintf(stderr, "running the baseline: %s\n", cmd.c_str());
        FILE * p = ::popen(cmd.c_str(), "r");
        VLLM_CHECK(p, "--baseline: cannot start ", cmd);
        std::string text;
        char buf[4096];
        while (size_t n = std::fread(buf, 1, sizeof buf, p)) text.append(buf, n);
        const int rc = ::pclose(p);
        VLLM_CHECK(rc == 0, "--baseline exited with status ", rc, " (see its stderr above)");
        const size_t nl = text.find_last_of('\n', text.size() >= 2 ? text.size() - 2 : 0);
        const json b = json::parse(text.substr(nl == std::string::npos ? 0 : nl + 1));
        double max_diff = 0;
        const auto bs = b["stats"].get<std::vector<double>>();
        VLLM_CHECK(bs.size() == result.stats.size(), "--baseline returned ", bs.size(), " stats");
        for (size_t i = 0; i < bs.size(); ++i) max_diff = std::max(max_diff, std::fabs(bs[i] - result.stats[i]));
        out["baseline"] = b;
        out["stats_max_abs_diff"] = max_diff;
        out["speedup_total"] = b["total_s"].get<double>() / best_total;
        out["speedup_eval"] = b["eval_s"].get<double>() / best_eval;
        out["speedup_load"] = b["load_s"].get<double>() / best_load;
    }
    if (temp) {
        std::remove(gt_path.c_str());
        std::remove(dt_path.c_str());
        ::rmdir(dir.c_str());
    }
    if (a.on("--json")) {
        std::printf("%s\n", out.dump(2).c_str());
        return 0;
    }
    std::printf("synthetic bbox set: %lld images, %lld ground truth, %lld results; AP %.4f\n", images, gt_boxes,
                images * dets, result.stats[0]);
    std::printf("| %-12s | %10s | %10s | %10s |\n", "scorer", "load s", "eval s", "total s");
    std::printf("| %-12s | %10s | %10s | %10s |\n", "------------", "----------", "----------", "----------");
    std::printf("| %-12s | %10.2f | %10.2f | %10.2f |\n", "native", best_load, best_eval, best_total);
    if (out.contains("baseline")) {
        const json & b = out["baseline"];
        std::printf("| %-12s | %10.2f | %10.2f | %10.2f |\n", "pycocotools", b["load_s"].get<double>(),
                    b["eval_s"].get<double>(), b["total_s"].get<double>());
        std::printf("| %-12s | %9.1fx | %9.1fx | %9.1fx |\n", "speedup", out["speedup_load"].get<double>(),
                    out["speedup_eval"].get<double>(), out["speedup_total"].get<double>());
        std::printf("stats: max |native - pycocotools| = %.3g\n", out["stats_max_abs_diff"].get<double>());
    }
    return 0;
}

}  // namespace visionllm::cli
