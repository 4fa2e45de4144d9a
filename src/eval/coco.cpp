// COCO-format ground truth and results files (see coco.h).
#include "eval/coco.h"

#include <cmath>
#include <ostream>
#include <sstream>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "io/json_file.h"
#include "visionllm/error.h"

namespace visionllm::eval {

using nlohmann::json;

namespace {

json parse(const std::string & path) { return io::read_json_file(path); }

// where an entry is, for messages: "<file>: <list>[<index>]", formatted only when an error is raised
struct Entry {
    const std::string & source;
    const char * list;
    size_t index;
};
std::ostream & operator<<(std::ostream & os, const Entry & e) {
    return os << e.source << ": " << e.list << "[" << e.index << "]";
}

// "<entry><what>" or "<entry><what>[i]" (or "[i][j]")
struct Field {
    const Entry & entry;
    const char * what;
    int64_t i = -1, j = -1;
};
std::ostream & operator<<(std::ostream & os, const Field & f) {
    os << f.entry << f.what;
    if (f.i >= 0) os << "[" << f.i << "]";
    if (f.j >= 0) os << "[" << f.j << "]";
    return os;
}

// an id: an integer, or a number with an integral value (1.0)
int64_t get_id(const json & o, const char * key, const Entry & where) {
    const auto it = o.find(key);
    VLLM_CHECK(it != o.end(), where, ": no \"", key, "\"");
    if (it->is_number_integer()) return it->get<int64_t>();
    if (it->is_number_float()) {
        const double v = it->get<double>();
        VLLM_CHECK(std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15, where, ": \"", key, "\" is ", v,
                   ", not an integer");
        return int64_t(v);
    }
    fail(where, ": \"", key, "\" must be an integer, not ", it->type_name());
}

double get_number(const json & v, const Field & where) {
    VLLM_CHECK(v.is_number(), where, " must be a number, not ", v.type_name());
    const double d = v.get<double>();
    VLLM_CHECK(std::isfinite(d), where, " is not finite");
    return d;
}

// `outer`: the polygon index inside a segmentation
std::vector<double> get_numbers(const json & v, const Entry & entry, const char * what, int64_t outer = -1) {
    VLLM_CHECK(v.is_array(), Field{entry, what, outer}, " must be an array of numbers, not ", v.type_name());
    std::vector<double> out;
    out.reserve(v.size());
    for (size_t k = 0; k < v.size(); ++k)
        out.push_back(get_number(v[k], outer >= 0 ? Field{entry, what, outer, int64_t(k)} : Field{entry, what, int64_t(k)}));
    return out;
}

bool get_bool(const json & o, const char * key, const Entry & where) {
    const auto it = o.find(key);
    if (it == o.end() || it->is_null()) return false;
    if (it->is_boolean()) return it->get<bool>();
    VLLM_CHECK(it->is_number(), where, ": \"", key, "\" must be a boolean or a number, not ", it->type_name());
    return get_number(*it, Field{where, " flag"}) != 0;
}

void parse_segmentation(const json & s, CocoAnnotation & a, const Entry & where) {
    const Field w{where, " segmentation"};
    if (s.is_array()) {
        a.segm = CocoAnnotation::Segm::Polygons;
        for (size_t i = 0; i < s.size(); ++i) a.polygons.push_back(get_numbers(s[i], where, " segmentation", int64_t(i)));
        return;
    }
    VLLM_CHECK(s.is_object(), w, " must be a list of polygons or an RLE object, not ", s.type_name());
    const auto size = s.find("size");
    const auto counts = s.find("counts");
    VLLM_CHECK(size != s.end() && counts != s.end(), w, ": an RLE needs \"size\" and \"counts\"");
    const std::vector<double> hw = get_numbers(*size, where, " segmentation size");
    VLLM_CHECK(hw.size() == 2 && hw[0] >= 0 && hw[1] >= 0 && hw[0] == std::floor(hw[0]) && hw[1] == std::floor(hw[1]),
               w, ": \"size\" must be [height, width]");
    VLLM_CHECK(hw[0] * hw[1] <= double(int64_t(1) << 31), w, ": size ", hw[0], " x ", hw[1], " is too large");
    const int64_t h = int64_t(hw[0]), wd = int64_t(hw[1]);
    a.segm = CocoAnnotation::Segm::Rle;
    if (counts->is_string()) {
        std::ostringstream name;
        name << w;
        a.rle = rle_from_string(counts->get<std::string>(), h, wd, name.str());
        return;
    }
    VLLM_CHECK(counts->is_array(), w, ": \"counts\" must be a string or a list of run lengths");
    a.rle.h = h;
    a.rle.w = wd;
    int64_t total = 0;
    for (size_t i = 0; i < counts->size(); ++i) {
        const double c = get_number((*counts)[i], Field{where, " segmentation counts", int64_t(i)});
        VLLM_CHECK(c >= 0 && c == std::floor(c) && c <= double(h * wd), w, ": counts[", i, "] = ", c,
                   " is not a run length");
        a.rle.counts.push_back(uint32_t(c));
        total += int64_t(c);
    }
    VLLM_CHECK(total == h * wd, w, ": the runs cover ", total, " pixels but the size is ", h, " x ", wd);
}

void parse_common(const json & o, CocoAnnotation & a, const Entry & where) {
    if (const auto it = o.find("bbox"); it != o.end() && !(it->is_array() && it->empty())) {
        const std::vector<double> bb = get_numbers(*it, where, " bbox");
        VLLM_CHECK(bb.size() == 4, where, ": bbox has ", bb.size(), " values, expected [x, y, width, height]");
        std::copy(bb.begin(), bb.end(), a.bbox);
        a.has_bbox = true;
    }
    if (const auto it = o.find("segmentation"); it != o.end() && !it->is_null()) parse_segmentation(*it, a, where);
    if (const auto it = o.find("keypoints"); it != o.end() && !it->is_null()) {
        a.keypoints = get_numbers(*it, where, " keypoints");
        VLLM_CHECK(a.keypoints.size() % 3 == 0, where, ": keypoints has ", a.keypoints.size(),
                   " values, not a multiple of 3 (x, y, v triplets)");
    }
}

}  // namespace

const CocoImage * CocoDataset::find_image(int64_t id) const {
    const auto it = image_index.find(id);
    return it == image_index.end() ? nullptr : &images[it->second];
}

const CocoCategory * CocoDataset::find_category(int64_t id) const {
    const auto it = category_index.find(id);
    return it == category_index.end() ? nullptr : &categories[it->second];
}

CocoDataset coco_from_json(const json & j, const std::string & source) {
    CocoDataset d;
    d.source = source;
    VLLM_CHECK(j.is_object(), source, ": a COCO annotation file is a JSON object, not ", j.type_name());
    const auto images = j.find("images");
    VLLM_CHECK(images != j.end() && images->is_array(), source, ": no \"images\" list");
    const auto cats = j.find("categories");
    VLLM_CHECK(cats != j.end() && cats->is_array(), source, ": no \"categories\" list");
    d.images.reserve(images->size());
    for (size_t i = 0; i < images->size(); ++i) {
        const json & o = (*images)[i];
        const Entry where{source, "images", i};
        VLLM_CHECK(o.is_object(), where, " is not an object");
        CocoImage im;
        im.id = get_id(o, "id", where);
        if (o.contains("width")) im.width = get_id(o, "width", where);
        if (o.contains("height")) im.height = get_id(o, "height", where);
        VLLM_CHECK(im.width >= 0 && im.height >= 0, where, ": negative width or height");
        if (const auto it = o.find("file_name"); it != o.end() && it->is_string()) im.file_name = it->get<std::string>();
        if (const auto it = o.find("crowdIndex"); it != o.end() && !it->is_null()) {
            im.crowd_index = get_number(*it, Field{where, " crowdIndex"});
            im.has_crowd_index = true;
        }
        VLLM_CHECK(d.image_index.emplace(im.id, d.images.size()).second, where, ": image id ", im.id,
                   " appears twice");
        d.images.push_back(std::move(im));
    }
    for (size_t i = 0; i < cats->size(); ++i) {
        const json & o = (*cats)[i];
        const Entry where{source, "categories", i};
        VLLM_CHECK(o.is_object(), where, " is not an object");
        CocoCategory c;
        c.id = get_id(o, "id", where);
        if (const auto it = o.find("name"); it != o.end() && it->is_string()) c.name = it->get<std::string>();
        if (const auto it = o.find("keypoints"); it != o.end() && it->is_array()) {
            for (const json & k : *it) {
                VLLM_CHECK(k.is_string(), where, ": keypoints must be names");
                c.keypoints.push_back(k.get<std::string>());
            }
        }
        VLLM_CHECK(d.category_index.emplace(c.id, d.categories.size()).second, where, ": category id ", c.id,
                   " appears twice");
        d.categories.push_back(std::move(c));
    }
    if (const auto anns = j.find("annotations"); anns != j.end() && !anns->is_null()) {
        VLLM_CHECK(anns->is_array(), source, ": \"annotations\" must be a list");
        std::unordered_set<int64_t> ids;
        d.annotations.reserve(anns->size());
        for (size_t i = 0; i < anns->size(); ++i) {
            const json & o = (*anns)[i];
            const Entry where{source, "annotations", i};
            VLLM_CHECK(o.is_object(), where, " is not an object");
            CocoAnnotation a;
            a.id = get_id(o, "id", where);
            a.image_id = get_id(o, "image_id", where);
            a.category_id = get_id(o, "category_id", where);
            VLLM_CHECK(ids.insert(a.id).second, where, ": annotation id ", a.id, " appears twice");
            VLLM_CHECK(d.image_index.count(a.image_id), where, ": image_id ", a.image_id, " is not in \"images\"");
            VLLM_CHECK(d.category_index.count(a.category_id), where, ": category_id ", a.category_id,
                       " is not in \"categories\"");
            a.iscrowd = get_bool(o, "iscrowd", where);
            if (const auto it = o.find("area"); it != o.end() && !it->is_null()) {
                a.area = get_number(*it, Field{where, " area"});
                a.has_area = true;
            }
            if (const auto it = o.find("num_keypoints"); it != o.end() && !it->is_null()) {
                a.num_keypoints = get_id(o, "num_keypoints", where);
                a.has_num_keypoints = true;
            }
            parse_common(o, a, where);
            d.annotations.push_back(std::move(a));
        }
    }
    return d;
}

Rle annotation_rle(const CocoDataset & gt, const CocoAnnotation & a, const char * what) {
    const CocoImage * im = gt.find_image(a.image_id);
    VLLM_CHECK(im, what, " ", a.id, ": image ", a.image_id, " is not in ", gt.source);
    switch (a.segm) {
    case CocoAnnotation::Segm::Rle: return a.rle;
    case CocoAnnotation::Segm::BoxPolygon:
        VLLM_CHECK(im->width > 0 && im->height > 0, gt.source, ": image ", a.image_id,
                   " has no width/height (needed for segm)");
        return rle_from_bbox(a.bbox, im->height, im->width);
    case CocoAnnotation::Segm::Polygons: {
        VLLM_CHECK(im->width > 0 && im->height > 0, gt.source, ": image ", a.image_id,
                   " has no width/height (needed for segm)");
        std::vector<Rle> rles;
        // pycocotools' frPyObjects: a first "polygon" of exactly 4 numbers makes them all [x, y, w, h] boxes
        const size_t first = a.polygons.empty() ? 0 : a.polygons[0].size();
        VLLM_CHECK(a.polygons.empty() || first >= 4, what, " ", a.id, " (image ", a.image_id,
                   "): a polygon needs at least 3 points (x, y pairs), the first has ", first, " numbers");
        for (const auto & poly : a.polygons) {
            if (first == 4) {
                VLLM_CHECK(poly.size() >= 4, what, " ", a.id, ": segmentation mixes boxes and shorter polygons");
                rles.push_back(rle_from_bbox(poly.data(), im->height, im->width));
            } else {
                rles.push_back(rle_from_polygon(poly.data(), int64_t(poly.size() / 2), im->height, im->width));
            }
        }
        if (rles.empty()) {  // "segmentation": []: an empty mask (pycocotools fails on it)
            Rle r;
            r.h = im->height;
            r.w = im->width;
            if (r.h * r.w > 0) r.counts.push_back(uint32_t(r.h * r.w));
            return r;
        }
        std::vector<const Rle *> parts;
        for (const auto & r : rles) parts.push_back(&r);
        return rle_merge(parts);
    }
    case CocoAnnotation::Segm::None: break;
    }
    fail(what, " ", a.id, " (image ", a.image_id, ") has no segmentation");
}


CocoDataset load_coco(const std::string & path) { return coco_from_json(parse(path), path); }

std::vector<CocoAnnotation> results_from_json(const CocoDataset & gt, const json & j, const std::string & source) {
    VLLM_CHECK(j.is_array(), source, ": a results file is a JSON array of objects, not ", j.type_name());
    std::vector<CocoAnnotation> out;
    if (j.empty()) return out;
    enum class Kind { Bbox, Segm, Keypoints } kind;
    const json & first = j[0];
    VLLM_CHECK(first.is_object(), source, ": results[0] is not an object");
    VLLM_CHECK(!first.contains("caption"), source, ": caption results cannot be scored here");
    if (first.contains("bbox") && !(first["bbox"].is_array() && first["bbox"].empty())) {
        kind = Kind::Bbox;
    } else if (first.contains("segmentation")) {
        kind = Kind::Segm;
    } else if (first.contains("keypoints")) {
        kind = Kind::Keypoints;
    } else {
        fail(source, ": results[0] has none of \"bbox\", \"segmentation\", \"keypoints\"");
    }
    out.reserve(j.size());
    for (size_t i = 0; i < j.size(); ++i) {
        const json & o = j[i];
        const Entry where{source, "results", i};
        VLLM_CHECK(o.is_object(), where, " is not an object");
        CocoAnnotation a;
        a.id = int64_t(i) + 1;
        a.image_id = get_id(o, "image_id", where);
        a.category_id = get_id(o, "category_id", where);
        const CocoImage * im = gt.find_image(a.image_id);
        VLLM_CHECK(im, where, ": image_id ", a.image_id, " is not in the ground truth (", gt.source, ")");
        VLLM_CHECK(gt.find_category(a.category_id), where, ": category_id ", a.category_id,
                   " is not in the ground truth (", gt.source, ")");
        const auto score = o.find("score");
        VLLM_CHECK(score != o.end(), where, ": no \"score\"");
        a.score = get_number(*score, Field{where, " score"});
        parse_common(o, a, where);
        switch (kind) {
        case Kind::Bbox:
            VLLM_CHECK(a.has_bbox, where, ": no \"bbox\" (the first result has one, so all must)");
            if (a.segm == CocoAnnotation::Segm::None) a.segm = CocoAnnotation::Segm::BoxPolygon;
            a.area = a.bbox[2] * a.bbox[3];
            a.has_area = true;
            break;
        case Kind::Segm: {
            VLLM_CHECK(a.segm != CocoAnnotation::Segm::None, where,
                       ": no \"segmentation\" (the first result has one, so all must)");
            if (a.segm == CocoAnnotation::Segm::Polygons) {  // not in pycocotools: rasterised on the image
                a.rle = annotation_rle(gt, a, "result");
                a.polygons.clear();
                a.segm = CocoAnnotation::Segm::Rle;
            }
            a.area = rle_area(a.rle);
            a.has_area = true;
            if (!a.has_bbox) {
                rle_to_bbox(a.rle, a.bbox);
                a.has_bbox = true;
            }
            break;
        }
        case Kind::Keypoints: {
            VLLM_CHECK(!a.keypoints.empty(), where, ": no \"keypoints\" (the first result has them, so all must)");
            double x0 = a.keypoints[0], x1 = x0, y0 = a.keypoints[1], y1 = y0;
            for (size_t k = 0; k < a.keypoints.size(); k += 3) {
                x0 = std::min(x0, a.keypoints[k]);
                x1 = std::max(x1, a.keypoints[k]);
                y0 = std::min(y0, a.keypoints[k + 1]);
                y1 = std::max(y1, a.keypoints[k + 1]);
            }
            a.area = (x1 - x0) * (y1 - y0);
            a.has_area = true;
            a.bbox[0] = x0;
            a.bbox[1] = y0;
            a.bbox[2] = x1 - x0;
            a.bbox[3] = y1 - y0;
            a.has_bbox = true;
            break;
        }
        }
        out.push_back(std::move(a));
    }
    return out;
}

std::vector<CocoAnnotation> load_results(const CocoDataset & gt, const std::string & path) {
    return results_from_json(gt, parse(path), path);
}

}  // namespace visionllm::eval
