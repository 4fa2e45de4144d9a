#!/usr/bin/env python3
"""Conformance goldens for the native COCOeval (src/eval): fixtures and the numbers the reference evaluators give.

References (PyPI, the versions the issue names): pycocotools 2.0.8 (COCO: bbox, segm, keypoints and the mask API)
and xtcocotools 1.14.3 (CrowdPose: COCOeval(..., 'keypoints_crowd', sigmas, use_area=False)), on Python 3.11.7;
pycocotools runs in this process with the venv's numpy 2.4.6, xtcocotools in a child process with numpy 1.26.4
(below); the versions are also written into every expected.json under "versions".

Files written to tests/data/golden/eval/ (see its README.md):
  <fixture>/gt.json        ground truth (COCO format); absent for the fixtures built from ../shared/data: their
                           expected.json names the file under "gt_shared" (a path relative to the ../shared folder)
                           with its sha256 instead, because ../shared/data/README.md forbids copying those files
                           into the project (a test skips those fixtures when ../shared is absent)
  <fixture>/dt.json        the results list (what loadRes reads)
  <fixture>/expected.json  {"iou_type", "dataset", "stats", "per_category", "precision_sum", "recall_sum", "notes",
                           "versions", "num_images", "num_gt", "num_dt"}
  index.json               {"fixtures": [names in the order written]}
  mask_api.json            pycocotools.mask cases: polygons / boxes / uncompressed RLEs -> compressed counts string,
                           area, toBbox; mask and box IoU (iscrowd 0 and 1); merge (union, intersection)

How each fixture is evaluated (exactly this, nothing else changed):
  COCO flavour ("dataset": "coco"): gt = pycocotools.coco.COCO(gt.json); dt = gt.loadRes(dt.json);
    E = COCOeval(gt, dt, iou_type); E.evaluate(); E.accumulate(); E.summarize(); stats = E.stats.tolist().
    per_category, precision_sum and recall_sum come from the same E.eval (summarize() does not change it there).
  bbox_empty_dets only: pycocotools' loadRes cannot load an empty results list (it reads anns[0]), so that fixture
    uses xtcocotools.coco.COCO / xtcocotools.cocoeval.COCOeval(gt, dt, 'bbox') the same way (xtcocotools takes []).
  CrowdPose flavour ("dataset": "crowdpose"): xtcocotools.coco.COCO(gt.json); dt = gt.loadRes(dt.json);
    E = COCOeval(gt, dt, 'keypoints_crowd', CROWDPOSE_SIGMAS, use_area=False); evaluate, accumulate, summarize.
    summarize() re-runs evaluate/accumulate on the easy / medium / hard image subsets (crowdIndex < 0.2, < 0.8,
    >= 0.8) and leaves E.eval from the last (hard) one, so per_category, precision_sum and recall_sum come from a
    SEPARATE COCOeval (on freshly loaded COCO objects) on which only evaluate() + accumulate() are called; stats
    come from the summarize()d one.
  per_category: in the order of gt.json "categories"; ap = mean of eval['precision'][:, :, k, 0, -1] over entries
    > -1 (-1 if none), k the category's index in sorted(catIds) (params.catIds). precision_sum / recall_sum: the sum
    of every entry of eval['precision'] / eval['recall'], the -1s included.

Fixtures are seeded (numpy default_rng, one seed per fixture), coordinates rounded to 2 decimals and scores to 4;
a second run writes the same bytes.

xtcocotools 1.14.3's PyPI wheel for CPython 3.11 (manylinux1) is built for numpy 1.x and fails to import with
numpy 2 ("numpy.dtype size changed"); rebuilt from its sdist against numpy 2 it imports, but its mask functions
then fail at run time (np.NPY_OWNDATA is gone). So the unmodified PyPI wheel runs in a child process with numpy
1.26.4, both installed into a folder beside the venv (--xt-path, default .venv/xtcoco):
  .venv/bin/pip install --no-deps --only-binary :all: --target .venv/xtcoco xtcocotools==1.14.3 numpy==1.26.4

Usage: .venv/bin/python tools/golden/cocoeval.py [--out tests/data/golden/eval] [--shared ../shared]
       [--xt-path .venv/xtcoco]
"""
import argparse
import contextlib
import copy
import hashlib
import io
import json
import math
import os
import platform
import subprocess
import sys

import numpy as np
import pycocotools.mask as mask_util
from pycocotools.coco import COCO as PyCOCO
from pycocotools.cocoeval import COCOeval as PyCOCOeval

# xtcocotools is imported only in the worker process (see evaluate_xt)

CROWDPOSE_SIGMAS = np.array([.79, .79, .72, .72, .62, .62, 1.07, 1.07, .87, .87, .89, .89, .79, .79]) / 10.0

COCO_KP_NAMES = ['nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder', 'right_shoulder',
                 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist', 'left_hip', 'right_hip', 'left_knee',
                 'right_knee', 'left_ankle', 'right_ankle']
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                 [8, 10], [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
# (u, t): position in the person box, u across the width, t down the height (the person faces the camera)
COCO_KP_TEMPLATE = [(0.50, 0.07), (0.53, 0.05), (0.47, 0.05), (0.57, 0.07), (0.43, 0.07), (0.68, 0.20),
                    (0.32, 0.20), (0.80, 0.36), (0.20, 0.36), (0.88, 0.50), (0.12, 0.50), (0.62, 0.53),
                    (0.38, 0.53), (0.64, 0.75), (0.36, 0.75), (0.65, 0.97), (0.35, 0.97)]
CROWD_KP_NAMES = ['left_shoulder', 'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
                  'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle', 'right_ankle', 'head', 'neck']
CROWD_KP_TEMPLATE = COCO_KP_TEMPLATE[5:17] + [(0.50, 0.03), (0.50, 0.15)]
CROWD_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9],
                  [8, 10], [9, 11]]  # as in test_crowdpose.json (unused by the evaluation)


# ---------------------------------------------------------------------------------------------------- helpers

def r2(x):
    return round(float(x), 2)


def r4(x):
    return round(float(x), 4)


def score_of(q, rng, noise=0.06):
    """A score correlated with the quality q in [0, 1], in [0.001, 0.9999], 4 decimals."""
    return r4(min(0.9999, max(0.001, 0.05 + 0.9 * q + rng.normal(0, noise))))


def box_iou(a, b):
    ax1, ay1, ax2, ay2 = a[0], a[1], a[0] + a[2], a[1] + a[3]
    bx1, by1, bx2, by2 = b[0], b[1], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(ax1, bx1))
    ih = max(0.0, min(ay2, by2) - max(ay1, by1))
    inter = iw * ih
    u = a[2] * a[3] + b[2] * b[3] - inter
    return inter / u if u > 0 else 0.0


def jitter_box(b, rel, rng):
    x, y, w, h = b
    nx = x + rng.normal(0, rel) * w
    ny = y + rng.normal(0, rel) * h
    nw = max(0.5, w * math.exp(rng.normal(0, rel)))
    nh = max(0.5, h * math.exp(rng.normal(0, rel)))
    return [r2(nx), r2(ny), r2(nw), r2(nh)]


def random_box(rng, W, H, side_lo=6.0, side_hi=300.0):
    s = math.exp(rng.uniform(math.log(side_lo), math.log(side_hi)))
    ar = math.exp(rng.normal(0, 0.4))
    w = min(W - 1.0, s * math.sqrt(ar))
    h = min(H - 1.0, s / math.sqrt(ar))
    x = rng.uniform(0, W - w)
    y = rng.uniform(0, H - h)
    return [r2(x), r2(y), r2(w), r2(h)]


def box_polygon(b):
    x, y, w, h = b
    return [[r2(x), r2(y), r2(x + w), r2(y), r2(x + w), r2(y + h), r2(x), r2(y + h)]]


def rle_str(rle):
    c = rle['counts']
    return {'size': [int(rle['size'][0]), int(rle['size'][1])],
            'counts': c.decode('ascii') if isinstance(c, bytes) else c}


def encode_mask(m):
    return mask_util.encode(np.asfortranarray(m.astype(np.uint8)))


def uncompressed_counts(m):
    """COCO's uncompressed RLE counts of a mask (column-major runs, starting with a run of 0s)."""
    f = np.asarray(m, dtype=np.uint8).flatten(order='F')
    if f.size == 0:
        return []
    change = np.flatnonzero(np.diff(f)) + 1
    bounds = np.concatenate([[0], change, [f.size]])
    runs = np.diff(bounds).astype(int).tolist()
    if f[0] == 1:
        runs = [0] + runs
    return runs


def poly_mask(polys, h, w):
    return mask_util.decode(mask_util.merge(mask_util.frPyObjects(polys, h, w)))


def dilate(m, n=1):
    m = m.astype(bool)
    for _ in range(n):
        p = np.pad(m, 1)
        m = p[1:-1, 1:-1] | p[:-2, 1:-1] | p[2:, 1:-1] | p[1:-1, :-2] | p[1:-1, 2:]
    return m.astype(np.uint8)


def erode(m, n=1):
    return (1 - dilate(1 - m.astype(np.uint8), n)).astype(np.uint8)


def shift(m, dx, dy):
    out = np.zeros_like(m)
    h, w = m.shape
    xs, xd = (0, dx) if dx >= 0 else (-dx, 0)
    ys, yd = (0, dy) if dy >= 0 else (-dy, 0)
    cw, ch = w - abs(dx), h - abs(dy)
    if cw > 0 and ch > 0:
        out[yd:yd + ch, xd:xd + cw] = m[ys:ys + ch, xs:xs + cw]
    return out


def star_polygon(rng, cx, cy, r, n=None, jitter=0.35):
    n = n or int(rng.integers(5, 13))
    ang = np.sort(rng.uniform(0, 2 * math.pi, n))
    rad = r * (1 + rng.uniform(-jitter, jitter, n))
    pts = []
    for a, rr in zip(ang, rad):
        pts += [r2(cx + rr * math.cos(a)), r2(cy + rr * math.sin(a))]
    return pts


def shoelace(poly):
    x = np.array(poly[0::2])
    y = np.array(poly[1::2])
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def make_person(rng, box, template, vis_p=(0.15, 0.15, 0.70)):
    """Keypoints (x, y, v flat; invisible ones written as 0, 0, 0) and their true positions for every joint."""
    x, y, w, h = box
    true = []
    kps = []
    for u, t in template:
        px = x + u * w + rng.normal(0, 0.03 * w)
        py = y + t * h + rng.normal(0, 0.02 * h)
        true.append((px, py))
        v = int(rng.choice([0, 1, 2], p=list(vis_p)))
        kps += [r2(px), r2(py), v] if v else [0, 0, 0]
    return kps, true


def jitter_keypoints(true, c, scale, rng, v=1):
    kps = []
    for px, py in true:
        kps += [r2(px + rng.normal(0, c * scale)), r2(py + rng.normal(0, c * scale)), v]
    return kps


def write_json_lines(path, obj):
    """Deterministic, diff-friendly JSON: lists of dicts one element per line, compact inside."""
    def dump(o):
        return json.dumps(o, separators=(',', ':'), ensure_ascii=True)

    if isinstance(obj, list):
        text = '[\n' + ',\n'.join(dump(a) for a in obj) + '\n]\n' if obj else '[]\n'
    else:
        parts = []
        for k, v in obj.items():
            if isinstance(v, list) and v and isinstance(v[0], dict):
                parts.append(dump(k) + ':[\n' + ',\n'.join(dump(a) for a in v) + '\n]')
            else:
                parts.append(dump(k) + ':' + dump(v))
        text = '{\n' + ',\n'.join(parts) + '\n}\n'
    with open(path, 'w') as f:
        f.write(text)


def sha256_of(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def versions(lib='pycocotools'):
    import importlib.metadata as md
    return {'python': platform.python_version(), 'numpy': np.__version__, lib: md.version(lib)}


# ---------------------------------------------------------------------------------------------------- evaluation

def per_category(E, gt_json):
    prec = E.eval['precision']
    cat_ids = [int(c) for c in E.params.catIds]  # sorted (np.unique in evaluate)
    out = []
    for c in gt_json['categories']:
        k = cat_ids.index(c['id'])
        p = prec[:, :, k, 0, -1]
        ap = float(np.mean(p[p > -1])) if np.any(p > -1) else -1.0
        out.append({'id': c['id'], 'name': c['name'], 'ap': ap})
    return out


def result_of(stats_E, acc_E, gt_path, lib):
    with open(gt_path) as f:
        gt_json = json.load(f)
    return {'stats': [float(s) for s in stats_E.stats], 'per_category': per_category(acc_E, gt_json),
            'precision_sum': float(np.sum(acc_E.eval['precision'])),
            'recall_sum': float(np.sum(acc_E.eval['recall'])), 'versions': versions(lib)}


def evaluate_py(gt_path, dt_path, iou_type):
    """pycocotools, in this process."""
    with contextlib.redirect_stdout(io.StringIO()):
        gt = PyCOCO(gt_path)
        dt = gt.loadRes(dt_path)
        E = PyCOCOeval(gt, dt, iou_type)
        E.evaluate(); E.accumulate(); E.summarize()
    return result_of(E, E, gt_path, 'pycocotools')


def xt_worker(job):
    """xtcocotools, run in a child process whose numpy is 1.x (see evaluate_xt). Prints the result as JSON."""
    from xtcocotools.coco import COCO
    from xtcocotools.cocoeval import COCOeval
    gt_path, dt_path = job['gt'], job['dt']
    with contextlib.redirect_stdout(io.StringIO()):
        if job['dataset'] == 'crowdpose':
            gt = COCO(gt_path)
            dt = gt.loadRes(dt_path)
            E = COCOeval(gt, dt, 'keypoints_crowd', CROWDPOSE_SIGMAS, use_area=False)
            E.evaluate(); E.accumulate(); E.summarize()
            # summarize() re-evaluated E on the crowd-index subsets: a separate, un-summarized evaluation
            gt2 = COCO(gt_path)
            dt2 = gt2.loadRes(dt_path)
            acc = COCOeval(gt2, dt2, 'keypoints_crowd', CROWDPOSE_SIGMAS, use_area=False)
            acc.evaluate(); acc.accumulate()
        else:
            gt = COCO(gt_path)
            dt = gt.loadRes(dt_path)
            E = COCOeval(gt, dt, job['iou_type'])
            E.evaluate(); E.accumulate(); E.summarize()
            acc = E
    print(json.dumps(result_of(E, acc, gt_path, 'xtcocotools')))


def evaluate_xt(gt_path, dt_path, iou_type, dataset, xt_path):
    """xtcocotools in a child process with PYTHONPATH=xt_path (PyPI's xtcocotools 1.14.3 wheel and numpy 1.26.4:
    that wheel is built for numpy 1.x and does not import with the venv's numpy 2)."""
    env = dict(os.environ)
    env['PYTHONPATH'] = os.path.abspath(xt_path) + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    job = {'gt': os.path.abspath(gt_path), 'dt': os.path.abspath(dt_path), 'iou_type': iou_type, 'dataset': dataset}
    r = subprocess.run([sys.executable, os.path.abspath(__file__), '--xt-worker', json.dumps(job)], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit('error: the xtcocotools worker failed (is %s set up? see the docstring):\n%s'
                 % (xt_path, r.stderr[-3000:]))
    return json.loads(r.stdout.strip().splitlines()[-1])


class Writer:
    def __init__(self, out, shared, xt_path):
        self.out = out
        self.shared = shared
        self.xt_path = xt_path
        self.rows = []

    def fixture(self, name, iou_type, dataset, gt, dt, notes, gt_shared=None, lib='pycocotools'):
        d = os.path.join(self.out, name)
        os.makedirs(d, exist_ok=True)
        dt_path = os.path.join(d, 'dt.json')
        write_json_lines(dt_path, dt)
        exp = {'iou_type': iou_type, 'dataset': dataset}
        if gt_shared is None:
            gt_path = os.path.join(d, 'gt.json')
            write_json_lines(gt_path, gt)
        else:
            gt_path = os.path.join(self.shared, gt_shared)
            stale = os.path.join(d, 'gt.json')
            if os.path.exists(stale):
                os.remove(stale)
            exp['gt_shared'] = gt_shared
            exp['gt_sha256'] = sha256_of(gt_path)
        if dataset == 'crowdpose':
            assert iou_type == 'keypoints'
            lib = 'xtcocotools'
        if lib == 'xtcocotools':
            res = evaluate_xt(gt_path, dt_path, iou_type, dataset, self.xt_path)
        else:
            res = evaluate_py(gt_path, dt_path, iou_type)
        stats = res['stats']
        exp.update({'stats': stats, 'per_category': res['per_category'], 'precision_sum': res['precision_sum'],
                    'recall_sum': res['recall_sum'], 'num_images': len(gt['images']),
                    'num_gt': len(gt['annotations']), 'num_dt': len(dt), 'evaluator': lib, 'notes': notes,
                    'versions': res['versions']})
        with open(os.path.join(d, 'expected.json'), 'w') as f:
            json.dump(exp, f, indent=1)
            f.write('\n')
        self.rows.append((name, iou_type, dataset, stats[0], len(gt['annotations']), len(dt)))


# ---------------------------------------------------------------------------------------------------- bbox

def bbox_coco_kp(w, gt):
    rng = np.random.default_rng(101)
    dt = []
    for a in gt['annotations']:
        for rel in (0.02, 0.08, 0.2):
            b = jitter_box(a['bbox'], rel, rng)
            dt.append({'image_id': a['image_id'], 'category_id': 1, 'bbox': b,
                       'score': score_of(box_iou(b, a['bbox']), rng)})
    for i in range(8):  # false positives
        im = gt['images'][int(rng.integers(len(gt['images'])))]
        b = random_box(rng, im['width'], im['height'], 8, 200)
        dt.append({'image_id': im['id'], 'category_id': 1, 'bbox': b, 'score': r4(rng.uniform(0.01, 0.7))})
    dt[4]['score'] = dt[1]['score']  # deliberate ties
    dt[-1]['score'] = dt[0]['score']
    rng.shuffle(dt)
    w.fixture('bbox_coco_kp', 'bbox', 'coco', gt, dt, gt_shared='data/coco_keypoints/test_coco.json', notes=(
        'GT: ../shared/data/coco_keypoints/test_coco.json (not copied, see gt_shared). 3 jittered boxes per GT '
        '(relative sigma 0.02 / 0.08 / 0.2, score ~ IoU) + 8 random false positives; two deliberate score ties; '
        'GT area (mask area) differs from w*h, so the area ranges follow "area", not the box.'))


def synth_a_gt(rng):
    cats = [{'supercategory': 'animal', 'id': 15, 'name': 'kite'},
            {'supercategory': 'person', 'id': 1, 'name': 'person'},
            {'supercategory': 'indoor', 'id': 90, 'name': 'toothbrush'},
            {'supercategory': 'vehicle', 'id': 3, 'name': 'car'},
            {'supercategory': 'vehicle', 'id': 8, 'name': 'truck'},
            {'supercategory': 'vehicle', 'id': 7, 'name': 'train'}]
    img_ids = [int(i) for i in rng.choice(np.arange(1, 5000), 30, replace=False)]
    images = []
    for i in img_ids:
        images.append({'id': i, 'file_name': '%012d.jpg' % i, 'width': int(rng.integers(160, 641)),
                       'height': int(rng.integers(120, 481))})
    ann_ids = iter(int(i) for i in rng.choice(np.arange(1, 1000000), 400, replace=False))
    anns = []
    roles = {}
    for k, im in enumerate(images):
        roles[im['id']] = 'empty' if k < 3 else ('dets_only' if k < 6 else 'normal')
    special = iter([(32.0, 32.0, 1024.0), (96.0, 96.0, 9216.0), (40.0, 25.6, 1024.0), (20.0, 20.0, 400.0)])
    n_crowd = 0
    n_ignore = 0
    for k, im in enumerate(images):
        if roles[im['id']] != 'normal':
            continue
        W, H = im['width'], im['height']
        for _ in range(int(rng.integers(1, 9))):
            cat = int(rng.choice([1, 3, 7, 15, 8], p=[0.35, 0.25, 0.15, 0.15, 0.10]))
            b = random_box(rng, W, H)
            area = r2(b[2] * b[3] * rng.uniform(0.55, 0.95))
            a = {'id': next(ann_ids), 'image_id': im['id'], 'category_id': cat, 'segmentation': box_polygon(b),
                 'area': area, 'bbox': b, 'iscrowd': 0}
            if n_ignore < 4 and rng.uniform() < 0.08:
                a['ignore'] = 1  # pycocotools overwrites "ignore" with iscrowd: this GT counts as a normal one
                n_ignore += 1
            anns.append(a)
        if k % 6 == 0:  # boxes on the area-range boundaries (area exactly 32^2 / 96^2: in two ranges)
            s = next(special, None)
            if s:
                b = [r2(rng.uniform(0, W - s[0])), r2(rng.uniform(0, H - s[1])), s[0], s[1]]
                anns.append({'id': next(ann_ids), 'image_id': im['id'], 'category_id': 3,
                             'segmentation': box_polygon(b), 'area': s[2], 'bbox': b, 'iscrowd': 0})
        if k in (7, 12, 19, 25):  # crowd regions
            cw, ch = min(W - 2.0, rng.uniform(100, 250)), min(H - 2.0, rng.uniform(80, 200))
            b = [r2(rng.uniform(0, W - cw)), r2(rng.uniform(0, H - ch)), r2(cw), r2(ch)]
            a = {'id': next(ann_ids), 'image_id': im['id'], 'category_id': 1 if n_crowd < 3 else 7,
                 'segmentation': {'size': [H, W], 'counts': [0]}, 'area': r2(cw * ch * 0.7), 'bbox': b,
                 'iscrowd': 1}
            if n_crowd == 0:
                a['ignore'] = 0  # overwritten by iscrowd: ignored anyway
            n_crowd += 1
            anns.append(a)
    # crowd segmentations: an uncompressed RLE of the box (not used by bbox evaluation, valid COCO)
    imgs = {im['id']: im for im in images}
    for a in anns:
        if a['iscrowd']:
            im = imgs[a['image_id']]
            m = mask_util.decode(mask_util.frPyObjects(np.array([a['bbox']], np.float64), im['height'], im['width'])[0])
            a['segmentation'] = {'size': [im['height'], im['width']], 'counts': uncompressed_counts(m)}
    order = rng.permutation(len(anns))
    anns = [anns[i] for i in order]
    gt = {'info': {'description': 'synthetic bbox fixture (tools/golden/cocoeval.py)'},
          'images': images, 'categories': cats, 'annotations': anns}
    return gt, roles


def bbox_synth_a(w):
    rng = np.random.default_rng(202)
    gt, roles = synth_a_gt(rng)
    dt = []
    for a in gt['annotations']:
        if a['iscrowd']:
            x, y, bw, bh = a['bbox']
            for _ in range(int(rng.integers(2, 5))):  # detections inside the crowd region
                sw, sh = rng.uniform(0.15, 0.5) * bw, rng.uniform(0.3, 0.8) * bh
                b = [r2(x + rng.uniform(0, bw - sw)), r2(y + rng.uniform(0, bh - sh)), r2(sw), r2(sh)]
                dt.append({'image_id': a['image_id'], 'category_id': a['category_id'], 'bbox': b,
                           'score': r4(rng.uniform(0.2, 0.95))})
            continue
        if a['category_id'] == 8:
            continue  # truck: GT but no detections
        for _ in range(int(rng.choice([0, 1, 1, 2, 3]))):
            rel = float(rng.choice([0.02, 0.05, 0.1, 0.2, 0.4]))
            b = jitter_box(a['bbox'], rel, rng)
            cat = a['category_id']
            if rng.uniform() < 0.1:
                cat = int(rng.choice([1, 3, 7, 15]))  # possibly the wrong category
            dt.append({'image_id': a['image_id'], 'category_id': cat, 'bbox': b,
                       'score': score_of(box_iou(b, a['bbox']), rng)})
    for im in gt['images']:
        role = roles[im['id']]
        n = 0 if role == 'empty' else (int(rng.integers(2, 6)) if role == 'dets_only' else int(rng.integers(0, 4)))
        for _ in range(n):
            b = random_box(rng, im['width'], im['height'])
            dt.append({'image_id': im['id'], 'category_id': int(rng.choice([1, 3, 7, 15])), 'bbox': b,
                       'score': r4(rng.uniform(0.01, 0.8))})
    # odd boxes: zero width, partly outside the image (negative x)
    normal = [im for im in gt['images'] if roles[im['id']] == 'normal']
    dt.append({'image_id': normal[0]['id'], 'category_id': 1, 'bbox': [10.0, 10.0, 0.0, 30.0], 'score': 0.5})
    dt.append({'image_id': normal[1]['id'], 'category_id': 3, 'bbox': [-12.5, 4.25, 60.0, 40.0], 'score': 0.45})
    for i in range(1, 6):  # deliberate ties (within and across images)
        dt[3 * i]['score'] = dt[0]['score']
    order = rng.permutation(len(dt))
    dt = [dt[i] for i in order]
    w.fixture('bbox_synth_a', 'bbox', 'coco', gt, dt, notes=(
        '30 images (ids non-contiguous, not sorted in the file), 6 categories listed out of id order (ids 15, 1, '
        '90, 3, 8, 7): 8 (truck) has GT but no detections, 90 has neither; small/medium/large areas incl. GT '
        'areas exactly 1024 and 9216 (in two ranges); 4 iscrowd=1 GT (uncompressed-RLE segmentation) with '
        'detections inside them; GT with "ignore": 1 (pycocotools overwrites ignore by iscrowd, so they count) and '
        'a crowd with "ignore": 0 (ignored anyway); 3 images without GT or detections, 3 with detections only; '
        'wrong-category detections, a zero-width box, a box with negative x; score ties.'))
    return gt


def bbox_synth_maxdets(w):
    rng = np.random.default_rng(303)
    cats = [{'supercategory': 'person', 'id': 1, 'name': 'person'},
            {'supercategory': 'vehicle', 'id': 2, 'name': 'bicycle'}]
    images = [{'id': 100 + 7 * i, 'file_name': 'm%d.jpg' % i, 'width': 640, 'height': 480} for i in range(10)]
    anns = []
    dt = []
    aid = 1
    for im in images:
        gts = []
        for cat, n in ((1, int(rng.integers(25, 46))), (2, int(rng.integers(5, 11)))):
            for _ in range(n):
                b = random_box(rng, 640, 480, 8, 120)
                anns.append({'id': aid, 'image_id': im['id'], 'category_id': cat, 'area': r2(b[2] * b[3] * 0.8),
                             'bbox': b, 'iscrowd': 0})
                gts.append(anns[-1])
                aid += 1
        for g in gts:
            for _ in range(3 if g['category_id'] == 1 else 2):
                rel = float(rng.choice([0.03, 0.1, 0.25]))
                b = jitter_box(g['bbox'], rel, rng)
                s = score_of(box_iou(b, g['bbox']), rng, noise=0.15)
                if rng.uniform() < 0.4:
                    s = r4(round(s * 20) / 20)  # many ties on a 0.05 grid
                dt.append({'image_id': im['id'], 'category_id': g['category_id'], 'bbox': b, 'score': s})
        for cat, n in ((1, 40), (2, 20)):
            for _ in range(n):
                b = random_box(rng, 640, 480, 8, 120)
                s = r4(rng.uniform(0.01, 0.6))
                if rng.uniform() < 0.4:
                    s = r4(round(s * 20) / 20)
                dt.append({'image_id': im['id'], 'category_id': cat, 'bbox': b, 'score': s})
    order = rng.permutation(len(dt))
    dt = [dt[i] for i in order]
    gt = {'images': images, 'categories': cats, 'annotations': anns}
    per = {}
    for d in dt:
        per[(d['image_id'], d['category_id'])] = per.get((d['image_id'], d['category_id']), 0) + 1
    lo, hi = min(v for (i, c), v in per.items() if c == 1), max(v for (i, c), v in per.items() if c == 1)
    w.fixture('bbox_synth_maxdets', 'bbox', 'coco', gt, dt, notes=(
        '10 images x 2 categories; person has %d..%d detections per image (> 100: maxDets 1 / 10 / 100 '
        'truncate, incl. true positives past rank 100), bicycle 30..50; ~40%% of the scores on a 0.05 grid, so '
        'many ties, also at the truncation rank (stable mergesort order decides which are kept).' % (lo, hi)))


def bbox_empty_dets(w, gt_a):
    gt = copy.deepcopy(gt_a)
    w.fixture('bbox_empty_dets', 'bbox', 'coco', gt, [], lib='xtcocotools', notes=(
        "GT of bbox_synth_a with an empty results list []. pycocotools 2.0.8's loadRes fails on [] (it reads "
        "anns[0]), so this one is evaluated with xtcocotools' COCO / COCOeval(gt, dt, 'bbox') (same algorithm; "
        'it accepts []): 0 where GT exists, -1 where a range has no GT.'))


# ---------------------------------------------------------------------------------------------------- segm

def segm_coco_kp(w, gt):
    rng = np.random.default_rng(404)
    imgs = {im['id']: im for im in gt['images']}
    dt = []
    for a in gt['annotations']:
        im = imgs[a['image_id']]
        h, wd = im['height'], im['width']
        g = poly_mask(a['segmentation'], h, wd)
        grle = encode_mask(g)
        variants = ['dilate', 'erode', 'shift', 'dilate_shift']
        for kind in [variants[i] for i in rng.choice(4, 3, replace=False)]:
            if kind == 'dilate':
                m = dilate(g, int(rng.integers(1, 4)))
            elif kind == 'erode':
                m = erode(g, int(rng.integers(1, 4)))
            elif kind == 'shift':
                m = shift(g, int(rng.integers(-6, 7)), int(rng.integers(-6, 7)))
            else:
                m = shift(dilate(g, 2), int(rng.integers(-12, 13)), int(rng.integers(-12, 13)))
            rle = encode_mask(m)
            q = float(mask_util.iou([rle], [grle], [0])[0][0])
            dt.append({'image_id': a['image_id'], 'category_id': 1, 'segmentation': rle_str(rle),
                       'score': score_of(q, rng)})
    for i in range(6):  # false positives: random blobs
        im = gt['images'][int(rng.integers(len(gt['images'])))]
        h, wd = im['height'], im['width']
        poly = star_polygon(rng, rng.uniform(20, wd - 20), rng.uniform(20, h - 20), rng.uniform(8, 60))
        rle = encode_mask(poly_mask([poly], h, wd))
        dt.append({'image_id': im['id'], 'category_id': 1, 'segmentation': rle_str(rle),
                   'score': r4(rng.uniform(0.01, 0.7))})
    dt[5]['score'] = dt[2]['score']
    order = rng.permutation(len(dt))
    dt = [dt[i] for i in order]
    w.fixture('segm_coco_kp', 'segm', 'coco', gt, dt, gt_shared='data/coco_keypoints/test_coco.json', notes=(
        'GT: ../shared/data/coco_keypoints/test_coco.json polygons (one object has 4 parts; not copied, see '
        'gt_shared). Results: compressed RLE strings of the rasterised GT masks dilated / eroded / shifted (3 per '
        'GT, score ~ mask IoU) + 6 random blobs, WITHOUT a "bbox" key (loadRes takes the segmentation branch: area '
        '= mask area, bbox = toBbox); a score tie.'))


SMALL_SIZES = [(60, 80), (72, 96), (90, 120), (120, 90), (75, 75), (81, 97), (64, 100), (99, 61), (88, 88),
               (60, 110), (117, 83), (70, 70), (100, 100), (66, 120), (120, 120)]


def segm_synth_a(w):
    rng = np.random.default_rng(505)
    cats = [{'supercategory': 'animal', 'id': 5, 'name': 'dog'},
            {'supercategory': 'animal', 'id': 2, 'name': 'cat'},
            {'supercategory': 'animal', 'id': 11, 'name': 'bird'}]
    images = []
    for i, (h, wd) in enumerate(SMALL_SIZES):
        images.append({'id': 1000 - 13 * i, 'file_name': 's%d.png' % i, 'height': h, 'width': wd})
    anns = []
    dt = []
    aid = 50
    for k, im in enumerate(images):
        h, wd = im['height'], im['width']
        if k in (2, 9, 13):
            continue  # no GT, no detections
        if k in (4, 11):  # detections only
            for _ in range(2):
                poly = star_polygon(rng, rng.uniform(10, wd - 10), rng.uniform(10, h - 10), rng.uniform(4, 15))
                m = poly_mask([poly], h, wd)
                rle = encode_mask(m)
                bb = [r2(v) for v in mask_util.toBbox(rle)]
                dt.append({'image_id': im['id'], 'category_id': int(rng.choice([2, 5, 11])), 'bbox': bb,
                           'segmentation': rle_str(rle), 'score': r4(rng.uniform(0.05, 0.9))})
            continue
        objs = []
        for _ in range(int(rng.integers(1, 5))):
            cat = int(rng.choice([2, 5, 11]))
            r = rng.uniform(3, min(h, wd) / 3)
            cx, cy = rng.uniform(r, wd - r), rng.uniform(r, h - r)
            polys = [star_polygon(rng, cx, cy, r)]
            if rng.uniform() < 0.3:  # a second part
                r2_ = r * rng.uniform(0.3, 0.7)
                polys.append(star_polygon(rng, min(wd - 1, cx + 1.6 * r), cy + rng.uniform(-r, r), r2_))
            objs.append((cat, polys))
        if k == 3:  # a large object (area > 96^2) overflowing a 120x90 image
            objs.append((5, [[-5.5, -4.25, 125.75, -3.0, 126.0, 95.5, -6.0, 94.0]]))
        for cat, polys in objs:
            m = poly_mask(polys, h, wd)
            area = r2(sum(shoelace(p) for p in polys))
            bb = [r2(v) for v in mask_util.toBbox(encode_mask(m))]
            anns.append({'id': aid, 'image_id': im['id'], 'category_id': cat, 'segmentation': polys,
                         'area': area, 'bbox': bb, 'iscrowd': 0})
            aid += 1
            for j in range(2 if area > 96 ** 2 else int(rng.choice([0, 1, 1, 2]))):
                kind = rng.uniform()
                if kind < 0.25:  # a polygon result (jittered vertices)
                    dpolys = [[r2(v + rng.normal(0, 0.8)) for v in p] for p in polys]
                    dm = poly_mask(dpolys, h, wd)
                    seg = dpolys
                else:
                    dm = m
                    if kind < 0.5:
                        dm = dilate(dm, 1)
                    elif kind < 0.75:
                        dm = erode(dm, 1)
                    dm = shift(dm, int(rng.integers(-2, 3)), int(rng.integers(-2, 3)))
                    seg = rle_str(encode_mask(dm))
                drle = encode_mask(dm)
                bb_d = [float(v) for v in mask_util.toBbox(drle)]
                if rng.uniform() < 0.4:  # a box not equal to the mask's extent: area = w*h of this box
                    bb_d = [bb_d[0] - 1.5, bb_d[1] - 0.75, bb_d[2] + 3.25, bb_d[3] + 1.5]
                bb_d = [r2(v) for v in bb_d]
                q = float(mask_util.iou([drle], [encode_mask(m)], [0])[0][0])
                dt.append({'image_id': im['id'], 'category_id': cat if rng.uniform() > 0.1 else 11,
                           'bbox': bb_d, 'segmentation': seg, 'score': score_of(q, rng)})
        if k in (1, 5, 8, 12):  # a crowd region: uncompressed RLE as COCO stores crowds
            cat = 2 if k != 12 else 11
            m = np.zeros((h, wd), np.uint8)
            for _ in range(3):
                poly = star_polygon(rng, rng.uniform(10, wd - 10), rng.uniform(10, h - 10), rng.uniform(5, 14))
                m |= poly_mask([poly], h, wd)
            rle = encode_mask(m)
            anns.append({'id': aid, 'image_id': im['id'], 'category_id': cat,
                         'segmentation': {'size': [h, wd], 'counts': uncompressed_counts(m)},
                         'area': float(mask_util.area(rle)), 'bbox': [r2(v) for v in mask_util.toBbox(rle)],
                         'iscrowd': 1})
            aid += 1
            for _ in range(2):  # detections on the crowd
                ys, xs = np.nonzero(m)
                j = int(rng.integers(len(xs)))
                poly = star_polygon(rng, float(xs[j]), float(ys[j]), rng.uniform(3, 8))
                dm = poly_mask([poly], h, wd)
                drle = encode_mask(dm)
                dt.append({'image_id': im['id'], 'category_id': cat,
                           'bbox': [r2(v) for v in mask_util.toBbox(drle)], 'segmentation': rle_str(drle),
                           'score': r4(rng.uniform(0.3, 0.9))})
    dt[7]['score'] = dt[1]['score']
    # loadRes reads the branch from the FIRST result: it must have "bbox" (all of them have)
    gt = {'images': images, 'categories': cats, 'annotations': anns}
    w.fixture('segm_synth_a', 'segm', 'coco', gt, dt, notes=(
        '15 small images (60x80 .. 120x120), 3 categories (ids 5, 2, 11 in file order); star polygons, some '
        'objects with two parts; a large polygon running outside a 120x90 image (area from the polygon, > 96^2); '
        '4 iscrowd=1 GT as UNCOMPRESSED RLE {"size", "counts": [...]} with detections on them; results have '
        '"bbox" AND "segmentation" (compressed RLE strings, a quarter of them polygons), so loadRes takes the bbox '
        'branch: area = bbox w*h (some boxes larger than the mask extent); GT "area" = polygon (shoelace) area; '
        '3 images without anything, 2 with detections only; a score tie.'))


ODD_SIZES = [(37, 53), (64, 64), (101, 77), (20, 200), (45, 31), (57, 90), (96, 33), (50, 50), (70, 41), (33, 120)]


def segm_synth_b(w):
    rng = np.random.default_rng(606)
    cats = [{'supercategory': 'thing', 'id': 4, 'name': 'motorcycle'},
            {'supercategory': 'thing', 'id': 9, 'name': 'boat'},
            {'supercategory': 'thing', 'id': 6, 'name': 'bus'}]  # bus: GT, no detections
    images = [{'id': 7 + 3 * i, 'file_name': 'b%d.png' % i, 'height': h, 'width': wd}
              for i, (h, wd) in enumerate(ODD_SIZES)]
    anns = []
    dt = []
    aid = 1
    for k, im in enumerate(images):
        h, wd = im['height'], im['width']
        polys_list = []
        # awkward hand-made polygons first
        if k == 0:
            polys_list += [(4, [[0.0, 0.0, 20.5, 0.0, 20.5, 12.25, 0.0, 12.25]]),   # touching the border
                           (9, [[-0.15, 30.1, 10.3, 29.9, 9.7, 40.05, -0.3, 41.7]]),  # tiny negative x
                           (6, [[30.0, 20.0, 45.0, 35.0, 30.0, 35.0, 45.0, 20.0]])]    # self-intersecting (bow tie)
        if k == 1:
            polys_list += [(4, [[-10.0, -10.0, 74.0, -5.0, 70.0, 30.5, -3.0, 20.0]]),  # mostly outside
                           (9, [[10.1, 50.1, 30.3, 50.1, 20.2, 63.9]]),                # a triangle
                           (6, [[40.0, 40.0, 41.0, 41.0, 42.0, 42.0, 40.5, 40.5]])]    # degenerate (collinear)
        if k == 3:
            polys_list += [(9, [[0.1, 0.1, 199.9, 0.1, 199.9, 19.9, 0.1, 19.9]]),  # the whole 20x200 image
                           (4, [[50.5, 5.5, 51.5, 5.5, 51.5, 6.5, 50.5, 6.5]])]    # a 1-pixel square
        if k == 6:
            polys_list += [(6, [[-5.0, 10.0, 38.0, 10.0, 38.0, 20.0, -5.0, 20.0],
                                [5.0, 40.0, 25.0, 40.0, 15.0, 60.0]])]             # two parts, one outside
        n_rand = 0 if k == 8 else int(rng.integers(1, 4))
        for _ in range(n_rand):
            r = rng.uniform(2, min(h, wd) / 2.5)
            cx, cy = rng.uniform(-r / 2, wd + r / 2), rng.uniform(-r / 2, h + r / 2)  # may cross the border
            poly = star_polygon(rng, cx, cy, r, jitter=0.6)
            polys_list.append((int(rng.choice([4, 9, 6])), [poly]))
        for cat, polys in polys_list:
            m = poly_mask(polys, h, wd)
            rle = encode_mask(m)
            anns.append({'id': aid, 'image_id': im['id'], 'category_id': cat, 'segmentation': polys,
                         'area': float(mask_util.area(rle)), 'bbox': [r2(v) for v in mask_util.toBbox(rle)],
                         'iscrowd': 0})
            aid += 1
            if cat == 6:
                continue  # bus: no detections
            for _ in range(int(rng.choice([1, 1, 2]))):
                dm = shift(m, int(rng.integers(-2, 3)), int(rng.integers(-2, 3)))
                if rng.uniform() < 0.5:
                    dm = dilate(dm, 1)
                drle = encode_mask(dm)
                q = float(mask_util.iou([drle], [rle], [0])[0][0])
                dt.append({'image_id': im['id'], 'category_id': cat, 'segmentation': rle_str(drle),
                           'score': score_of(q, rng)})
        if k in (2, 8):  # an empty mask result and a full-image result
            e = np.zeros((h, wd), np.uint8)
            dt.append({'image_id': im['id'], 'category_id': 4, 'segmentation': rle_str(encode_mask(e)),
                       'score': 0.3})
            dt.append({'image_id': im['id'], 'category_id': 9, 'segmentation': rle_str(encode_mask(e + 1)),
                       'score': 0.2})
    gt = {'images': images, 'categories': cats, 'annotations': anns}
    w.fixture('segm_synth_b', 'segm', 'coco', gt, dt, notes=(
        '10 odd-sized images (37x53, 20x200, 96x33, ...); awkward GT polygons: fractional vertices, touching the '
        'border, mostly outside the image, tiny negative x (frPoly rounds with (int)(5*x+.5), truncating toward '
        'zero), a self-intersecting bow tie, a degenerate collinear one (empty mask), a triangle, a 1-pixel square, '
        'a two-part object with one part outside; random polygons crossing the border; results as compressed RLE '
        'strings without "bbox"; an empty-mask and a full-image result; category 6 (bus) has GT but no detections; '
        'GT area = rasterised mask area.'))


# ---------------------------------------------------------------------------------------------------- keypoints

def kp_dets_for(rng, a, true, scale, n_kp, cs=(0.005, 0.015, 0.03, 0.06, 0.12), n=2, v=1):
    out = []
    for c in rng.choice(cs, n, replace=False):
        kps = jitter_keypoints(true, float(c), scale, rng, v=v)
        out.append({'image_id': a['image_id'], 'category_id': a['category_id'], 'keypoints': kps,
                    'score': score_of(1.0 - 6.0 * float(c), rng, noise=0.08)})
    return out


def true_from_gt(a, template, rng):
    """Positions for every joint of a GT: the labelled ones, the template inside the box for the others."""
    x, y, w, h = a['bbox']
    k = a['keypoints']
    out = []
    for j, (u, t) in enumerate(template):
        if k[3 * j + 2] > 0:
            out.append((k[3 * j], k[3 * j + 1]))
        else:
            out.append((x + u * w + rng.normal(0, 0.05 * w), y + t * h + rng.normal(0, 0.05 * h)))
    return out


def kp_coco(w, gt):
    rng = np.random.default_rng(707)
    dt = []
    for a in gt['annotations']:
        true = true_from_gt(a, COCO_KP_TEMPLATE, rng)
        if a['num_keypoints'] == 0:
            # near a GT without visible keypoints: computeOks' bbox-extent branch (k1 == 0)
            x, y, bw, bh = a['bbox']
            kps = []
            for j in range(17):
                kps += [r2(x + rng.uniform(-1.3, 2.3) * bw), r2(y + rng.uniform(-1.3, 2.3) * bh), 1]
            dt.append({'image_id': a['image_id'], 'category_id': 1, 'keypoints': kps,
                       'score': r4(rng.uniform(0.2, 0.6))})
            continue
        dt += kp_dets_for(rng, a, true, math.sqrt(a['area']), 17, n=3)
    for i in range(5):  # false positives
        im = gt['images'][int(rng.integers(len(gt['images'])))]
        b = random_box(rng, im['width'], im['height'], 40, 300)
        _, true = make_person(rng, b, COCO_KP_TEMPLATE)
        dt.append({'image_id': im['id'], 'category_id': 1, 'keypoints': jitter_keypoints(true, 0.01, 1.0, rng),
                   'score': r4(rng.uniform(0.01, 0.6))})
    dt[3]['score'] = dt[0]['score']
    order = rng.permutation(len(dt))
    dt = [dt[i] for i in order]
    w.fixture('kp_coco', 'keypoints', 'coco', gt, dt, gt_shared='data/coco_keypoints/test_coco.json', notes=(
        'GT: ../shared/data/coco_keypoints/test_coco.json (17 keypoints, 2 GT with num_keypoints 0 -> ignored; '
        'not copied, see gt_shared). 3 results per GT: keypoints jittered with a Gaussian of sd c*sqrt(area), c in '
        '{.005, .015, .03, .06, .12}, v = 1 everywhere (as VisionLLM v2 writes them), invisible joints placed '
        'inside the box; one result near each num_keypoints-0 GT (bbox-extent branch); 5 false positives; no '
        '"bbox" key (loadRes: area and bbox from the keypoints\' extent); a score tie.'))


def synth_people(rng, images, template, n_range, h_range, coco_area=True, id0=1, crowd_at=(), zero_at=(),
                 v2_count=False):
    anns = []
    aid = id0
    for k, im in enumerate(images):
        W, H = im['width'], im['height']
        for _ in range(int(rng.integers(*n_range)) if n_range[1] > n_range[0] else n_range[0]):
            ph = math.exp(rng.uniform(math.log(h_range[0]), math.log(h_range[1])))
            ph = min(ph, H - 2.0)
            pw = ph * rng.uniform(0.35, 0.6)
            b = [r2(rng.uniform(0, W - pw)), r2(rng.uniform(0, H - ph)), r2(pw), r2(ph)]
            kps, _ = make_person(rng, b, template)
            vs = kps[2::3]
            a = {'id': aid, 'image_id': im['id'], 'category_id': 1, 'iscrowd': 0, 'bbox': b, 'keypoints': kps,
                 'num_keypoints': sum(1 for v in vs if (v == 2 if v2_count else v > 0))}
            if coco_area:
                a['area'] = r2(b[2] * b[3] * rng.uniform(0.45, 0.65))
            anns.append(a)
            aid += 1
        if k in zero_at:  # a person without labelled keypoints (ignored)
            ph = rng.uniform(20, 80)
            b = [r2(rng.uniform(0, W - ph / 2)), r2(rng.uniform(0, H - ph)), r2(ph / 2), r2(ph)]
            a = {'id': aid, 'image_id': im['id'], 'category_id': 1, 'iscrowd': 0, 'bbox': b,
                 'keypoints': [0] * (3 * len(template)), 'num_keypoints': 0}
            if coco_area:
                a['area'] = r2(b[2] * b[3] * 0.5)
            anns.append(a)
            aid += 1
        if k in crowd_at:
            cw, ch = min(W - 2.0, rng.uniform(120, 300)), min(H - 2.0, rng.uniform(100, 250))
            b = [r2(rng.uniform(0, W - cw)), r2(rng.uniform(0, H - ch)), r2(cw), r2(ch)]
            a = {'id': aid, 'image_id': im['id'], 'category_id': 1, 'iscrowd': 1, 'bbox': b,
                 'keypoints': [0] * (3 * len(template)), 'num_keypoints': 0}
            if coco_area:
                a['area'] = r2(cw * ch * 0.6)
            anns.append(a)
            aid += 1
    return anns


def person_category(names, skeleton):
    return [{'supercategory': 'person', 'id': 1, 'name': 'person', 'keypoints': names, 'skeleton': skeleton}]


def kp_synth_dets(rng, gt, template, scale_fn, extra_fp, big_image=None, allzero=0, partial_v0=0):
    imgs = {im['id']: im for im in gt['images']}
    dt = []
    n_kp = len(template)
    for a in gt['annotations']:
        if a['iscrowd']:  # detections inside the crowd region (OKS 1 with it: the bbox-extent branch)
            x, y, bw, bh = a['bbox']
            for _ in range(2):
                b = [x + rng.uniform(0, 0.6) * bw, y + rng.uniform(0, 0.4) * bh, 0.3 * bw, 0.55 * bh]
                _, true = make_person(rng, b, template)
                dt.append({'image_id': a['image_id'], 'category_id': 1,
                           'keypoints': jitter_keypoints(true, 0.01, bw, rng), 'score': r4(rng.uniform(0.3, 0.9))})
            continue
        true = true_from_gt(a, template, rng)
        if not any(v > 0 for v in a['keypoints'][2::3]):
            x, y, bw, bh = a['bbox']
            for _ in range(2):  # around / beyond the doubled box
                kps = []
                for j in range(n_kp):
                    kps += [r2(x + rng.uniform(-1.4, 2.4) * bw), r2(y + rng.uniform(-1.4, 2.4) * bh), 1]
                dt.append({'image_id': a['image_id'], 'category_id': 1, 'keypoints': kps,
                           'score': r4(rng.uniform(0.1, 0.7))})
            continue
        n = int(rng.choice([1, 2, 2, 3]))
        if big_image is not None and a['image_id'] == big_image:
            n = 5
        dt += kp_dets_for(rng, a, true, scale_fn(a), n_kp, n=n)
    for im_id in extra_fp:
        im = imgs[im_id]
        b = random_box(rng, im['width'], im['height'], 30, 250)
        _, true = make_person(rng, b, template)
        dt.append({'image_id': im_id, 'category_id': 1, 'keypoints': jitter_keypoints(true, 0.01, 1.0, rng),
                   'score': r4(rng.uniform(0.01, 0.7))})
    # some results with v = 0 joints: part of them, and (allzero of them) every joint
    idx = rng.choice(len(dt), partial_v0 + allzero, replace=False)
    for t, i in enumerate(idx):
        kps = dt[int(i)]['keypoints']
        if t < allzero:
            for j in range(n_kp):
                kps[3 * j + 2] = 0
        else:
            for j in rng.choice(n_kp, n_kp // 3, replace=False):
                kps[3 * int(j) + 2] = 0
    return dt


def kp_synth_a(w):
    rng = np.random.default_rng(808)
    images = [{'id': 20 + i * 3, 'file_name': 'p%d.jpg' % i, 'width': int(rng.integers(320, 641)),
               'height': int(rng.integers(240, 481))} for i in range(20)]
    images[5]['width'], images[5]['height'] = 640, 480
    anns = synth_people(rng, images, COCO_KP_TEMPLATE, (1, 5), (18, 420), crowd_at=(2, 9, 15), zero_at=(1, 7, 12))
    big = images[5]['id']
    anns += synth_people(rng, [images[5]], COCO_KP_TEMPLATE, (6, 6), (60, 200), id0=len(anns) + 1)
    gt = {'images': images, 'categories': person_category(COCO_KP_NAMES, COCO_SKELETON), 'annotations': anns}
    dt = kp_synth_dets(rng, gt, COCO_KP_TEMPLATE, lambda a: math.sqrt(a['area']),
                       extra_fp=[images[i]['id'] for i in (0, 3, 3, 8, 17)], big_image=big, allzero=3, partial_v0=8)
    dt[10]['score'] = dt[2]['score']
    per_img = {}
    for d in dt:
        per_img[d['image_id']] = per_img.get(d['image_id'], 0) + 1
    w.fixture('kp_synth_a', 'keypoints', 'coco', gt, dt, notes=(
        '20 images, person (17 keypoints); person heights 18..420 px, so GT areas small (< 32^2: only in "all"), '
        'medium and large; GT with num_keypoints 0 (ignored) and iscrowd=1 crowds (num_keypoints 0) with results '
        'near/inside them (computeOks bbox-extent branch, k1 == 0: OKS 1 inside the doubled box); results with '
        'some v=0 joints and 3 with all v=0 (pycocotools keeps them; v of results is unused); image %d has %d '
        'results (> maxDets 20); random false positives; no "bbox" key in results; a score tie.'
        % (big, per_img[big])))


def kp_synth_b(w):
    rng = np.random.default_rng(909)
    images = [{'id': 300 + i * 11, 'file_name': 'q%d.jpg' % i, 'width': int(rng.integers(400, 1001)),
               'height': int(rng.integers(300, 801))} for i in range(16)]
    with_gt = images[:12]
    anns = synth_people(rng, with_gt, COCO_KP_TEMPLATE, (1, 4), (25, 700), crowd_at=(4,), zero_at=(6,))
    # inconsistent num_keypoints (pycocotools ignores GT by the num_keypoints FIELD; OKS uses v > 0)
    a = anns[0]
    a['num_keypoints'] = 0  # labelled joints but num_keypoints 0: ignored
    b = anns[3]
    b['keypoints'] = [0] * 51  # no labelled joints but num_keypoints > 0: not ignored, bbox-extent OKS
    b['num_keypoints'] = 5
    gt = {'images': images, 'categories': person_category(COCO_KP_NAMES, COCO_SKELETON), 'annotations': anns}
    dt = kp_synth_dets(rng, gt, COCO_KP_TEMPLATE, lambda a: math.sqrt(a['area']),
                       extra_fp=[images[i]['id'] for i in (12, 12, 13, 0, 5)], allzero=1, partial_v0=4)
    # a result right inside GT b's box (OKS 1 with it via the bbox-extent branch)
    x, y, bw, bh = b['bbox']
    kps = []
    for j in range(17):
        kps += [r2(x + rng.uniform(0.1, 0.9) * bw), r2(y + rng.uniform(0.1, 0.9) * bh), 1]
    dt.append({'image_id': b['image_id'], 'category_id': 1, 'keypoints': kps, 'score': 0.77})
    order = rng.permutation(len(dt))
    dt = [dt[i] for i in order]
    w.fixture('kp_synth_b', 'keypoints', 'coco', gt, dt, notes=(
        '16 larger images (400..1000 px), 4 without GT (2 of them with false positives, 2 with nothing); a GT '
        'with labelled joints but num_keypoints 0 (ignored: pycocotools reads the num_keypoints field) and a GT '
        'with num_keypoints 5 but no labelled joint (not ignored; OKS by the bbox-extent branch; a result inside '
        'its box scores OKS 1); a crowd, a num_keypoints-0 person; partial and all-v=0 results.'))


# ---------------------------------------------------------------------------------------------------- CrowdPose

def crowd_dets(rng, gt, extra_fp=(), allzero=0):
    return kp_synth_dets(rng, gt, CROWD_KP_TEMPLATE, lambda a: math.sqrt(a['bbox'][2] * a['bbox'][3] * 0.53),
                         extra_fp=list(extra_fp), allzero=allzero, partial_v0=3)


def crowd_test(w, gt):
    rng = np.random.default_rng(1001)
    dt = crowd_dets(rng, gt, extra_fp=[gt['images'][0]['id'], gt['images'][1]['id']], allzero=1)
    order = rng.permutation(len(dt))
    dt = [dt[i] for i in order]
    w.fixture('crowd_test', 'keypoints', 'crowdpose', gt, dt, gt_shared='data/crowdpose/test_crowdpose.json',
              notes=(
                  'GT: ../shared/data/crowdpose/test_crowdpose.json (14 keypoints, no "area", crowdIndex 0.33 and '
                  '0.39: both medium, so AP easy and AP hard are -1; a GT with num_keypoints 0; not copied, see '
                  'gt_shared). Results: joints jittered (sd c*sqrt(w*h*0.53)), v=1, some v=0 joints, one with all '
                  'v=0 (xtcocotools drops it), 2 false positives.'))


def crowd_gt(rng, n_images, crowd_indices, id_base):
    images = []
    for i in range(n_images):
        images.append({'file_name': '%d.jpg' % (id_base + i), 'id': id_base + 17 * i,
                       'height': int(rng.integers(300, 601)), 'width': int(rng.integers(400, 801)),
                       'crowdIndex': crowd_indices[i]})
    anns = synth_people(rng, images, CROWD_KP_TEMPLATE, (1, 6), (40, 450), coco_area=False, id0=1000,
                        zero_at=(3, 11), crowd_at=(), v2_count=True)
    return {'categories': person_category(CROWD_KP_NAMES, CROWD_SKELETON), 'images': images, 'annotations': anns}


def crowd_synth_a(w):
    rng = np.random.default_rng(1102)
    ci = [r2(v) for v in rng.uniform(0, 1, 30)]
    ci[0], ci[1], ci[2], ci[3] = 0.2, 0.8, 0.0, 0.19  # the split boundaries (0.2 -> medium, 0.8 -> hard)
    gt = crowd_gt(rng, 30, ci, 500)
    # a person whose labelled joints are all v=1: num_keypoints (v=2 only) is 0 -> ignored
    a = gt['annotations'][5]
    a['keypoints'] = [v if j % 3 != 2 or v == 0 else 1 for j, v in enumerate(a['keypoints'])]
    a['num_keypoints'] = 0
    dt = crowd_dets(rng, gt, extra_fp=[gt['images'][i]['id'] for i in (1, 4, 4, 20)], allzero=3)
    dt[6]['score'] = dt[1]['score']
    order = rng.permutation(len(dt))
    dt = [dt[i] for i in order]
    split = [sum(1 for v in ci if v < 0.2), sum(1 for v in ci if 0.2 <= v < 0.8), sum(1 for v in ci if v >= 0.8)]
    w.fixture('crowd_synth_a', 'keypoints', 'crowdpose', gt, dt, notes=(
        '30 images with crowdIndex over [0, 1) (%d easy < 0.2, %d medium, %d hard >= 0.8; incl. exactly 0.2 and '
        '0.8); GT without "area" (use_area=False: OKS scale and area ranges from bbox w*h*0.53); num_keypoints '
        'counts v=2 joints only (a GT whose joints are all v=1 has num_keypoints 0 -> ignored, though its joints '
        'have v > 0); 2 people without labelled joints; 3 results with all v=0 (dropped by xtcocotools), some '
        'with partial v=0; false positives; a score tie. AP easy/medium/hard are round(mean(precision[:, :, :, 0, '
        ':]), 4) over ALL entries of each subset (xtcocotools get_type_result).' % tuple(split)))


def crowd_synth_nohard(w):
    rng = np.random.default_rng(1203)
    ci = [r2(v) for v in rng.uniform(0, 0.79, 12)]
    ci[0] = 0.05
    gt = crowd_gt(rng, 12, ci, 900)
    dt = crowd_dets(rng, gt, extra_fp=[gt['images'][2]['id']], allzero=1)
    w.fixture('crowd_synth_nohard', 'keypoints', 'crowdpose', gt, dt, notes=(
        '12 images with crowdIndex < 0.8: the hard split is empty and xtcocotools reports -1 for AP hard (the '
        'empty subset evaluates nothing and precision stays -1).'))


# ---------------------------------------------------------------------------------------------------- mask API

def mask_api(out):
    rng = np.random.default_rng(1304)
    sizes = [(1, 1), (1, 17), (17, 1), (5, 7), (37, 53), (64, 64), (20, 200), (101, 77), (3, 250)]
    polys = []
    # hand-made edge cases
    hand = [
        ((1, 1), [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0]),            # the full 1x1 image
        ((1, 1), [0.2, 0.2, 0.6, 0.2, 0.4, 0.7]),                        # tiny, inside one pixel
        ((1, 17), [-1.0, -1.0, 18.0, -1.0, 18.0, 2.0, -1.0, 2.0]),       # covers a 1xN image
        ((1, 17), [3.3, 0.1, 9.9, 0.4, 6.5, 0.9]),
        ((17, 1), [0.5, 2.5, 0.5, 14.5, 0.9, 8.0]),
        ((5, 7), [-0.15, -0.1, 3.1, -0.05, 3.05, 2.95, -0.3, 3.0]),     # negative coords near 0: (int) truncation
        ((5, 7), [0.1, 0.1, 6.9, 4.9, 0.1, 4.9, 6.9, 0.1]),              # self-intersecting bow tie
        ((5, 7), [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]),                        # collinear: empty
        ((5, 7), [10.0, 10.0, 20.0, 10.0, 15.0, 20.0]),                  # entirely outside: empty
        ((37, 53), [0.0, 0.0, 53.0, 0.0, 53.0, 37.0, 0.0, 37.0]),        # exactly the image
        ((37, 53), [12.5, 7.5, 30.5, 7.5, 30.5, 20.5, 12.5, 20.5]),      # half-pixel corners
        ((37, 53), [12.1, 7.1, 30.1, 7.1, 30.1, 20.1, 12.1, 20.1]),      # 5*x + .5 exactly on integers
        ((37, 53), [40.0, -5.0, 60.0, 10.0, 45.0, 45.0, 30.0, 20.0]),    # partly outside
        ((64, 64), [31.99, 31.99, 32.01, 31.99, 32.01, 32.01]),          # sub-pixel
        ((20, 200), [-3.7, 5.2, 205.1, 4.4, 100.0, 25.3]),
    ]
    for (h, w), p in hand:
        polys.append((h, w, p))
    for _ in range(17):
        h, w = sizes[int(rng.integers(3, len(sizes)))]
        r = rng.uniform(0.3, max(h, w) / 2.0)
        cx, cy = rng.uniform(-r / 2, w + r / 2), rng.uniform(-r / 2, h + r / 2)
        polys.append((h, w, star_polygon(rng, cx, cy, r, n=int(rng.integers(3, 10)), jitter=0.7)))
    poly_cases = []
    for h, w, p in polys:
        rle = mask_util.frPyObjects([p], h, w)[0]
        poly_cases.append({'h': h, 'w': w, 'polygon': p, 'counts': rle_str(rle)['counts'],
                           'area': int(mask_util.area(rle)), 'bbox': [float(v) for v in mask_util.toBbox(rle)]})
    boxes = [((5, 7), [1.0, 1.0, 3.0, 2.0]), ((5, 7), [-1.5, 0.25, 4.0, 10.0]), ((1, 1), [0.0, 0.0, 1.0, 1.0]),
             ((37, 53), [10.3, 5.7, 20.2, 0.3]), ((37, 53), [0.0, 0.0, 0.0, 5.0]),
             ((20, 200), [150.5, 2.5, 60.0, 20.0]),
             ((64, 64), [12.12, 40.4, 33.33, 11.11]), ((1, 17), [2.4, -3.0, 7.7, 9.0])]
    box_cases = []
    for (h, w), b in boxes:
        # frBbox (a list of 4-number lists also routes there in 2.0.8, but then fails: frBbox wants an ndarray)
        rle = mask_util.frPyObjects(np.array([b], np.float64), h, w)[0]
        box_cases.append({'h': h, 'w': w, 'box': b, 'counts': rle_str(rle)['counts'],
                          'area': int(mask_util.area(rle)), 'bbox': [float(v) for v in mask_util.toBbox(rle)]})
    # uncompressed RLEs
    unc = [(1, 1, [0, 1]), (1, 1, [1]), (3, 4, [12]), (3, 4, [0, 12]), (3, 4, [2, 0, 3, 7]), (2, 5, [0, 3, 4, 3]),
           (4, 4, [5, 2, 2, 2, 5])]
    for _ in range(5):
        h, w = sizes[int(rng.integers(3, len(sizes)))]
        m = (rng.uniform(size=(h, w)) < rng.uniform(0.05, 0.6)).astype(np.uint8)
        m = dilate(m, 1) if rng.uniform() < 0.5 else m
        unc.append((h, w, uncompressed_counts(m)))
    unc_cases = []
    for h, w, c in unc:
        rle = mask_util.frPyObjects({'size': [h, w], 'counts': c}, h, w)
        unc_cases.append({'h': h, 'w': w, 'counts_list': c, 'counts': rle_str(rle)['counts'],
                          'area': int(mask_util.area(rle)), 'bbox': [float(v) for v in mask_util.toBbox(rle)]})
    # mask IoU pairs (same size; one pair of different sizes -> -1)
    by_size = {}
    all_rles = [(c['h'], c['w'], c['counts']) for c in poly_cases + box_cases + unc_cases]
    for h, w, s in all_rles:
        by_size.setdefault((h, w), []).append(s)
    for (h, w) in list(by_size):
        by_size[(h, w)].append(rle_str(encode_mask(np.zeros((h, w), np.uint8)))['counts'])  # empty
        by_size[(h, w)].append(rle_str(encode_mask(np.ones((h, w), np.uint8)))['counts'])   # full
    keys = sorted(by_size)
    iou_cases = []
    while len(iou_cases) < 40:
        h, w = keys[int(rng.integers(len(keys)))]
        lst = by_size[(h, w)]
        if len(lst) < 2:
            continue
        i, j = (int(v) for v in rng.choice(len(lst), 2, replace=len(iou_cases) % 9 == 0))
        d = {'size': [h, w], 'counts': lst[i]}
        g = {'size': [h, w], 'counts': lst[j]}
        for crowd in (0, 1):
            iou_cases.append({'h': h, 'w': w, 'dt': lst[i], 'gt': lst[j], 'iscrowd': crowd,
                              'iou': float(mask_util.iou([d], [g], [crowd])[0][0])})
    e = rle_str(encode_mask(np.zeros((5, 7), np.uint8)))['counts']
    for crowd in (0, 1):  # empty vs empty, and different sizes
        iou_cases.append({'h': 5, 'w': 7, 'dt': e, 'gt': e, 'iscrowd': crowd,
                          'iou': float(mask_util.iou([{'size': [5, 7], 'counts': e}], [{'size': [5, 7], 'counts': e}],
                                                     [crowd])[0][0])})
    a57 = by_size[(5, 7)][0]
    a3764 = by_size[(37, 53)][0]
    iou_cases.append({'h': 5, 'w': 7, 'dt': a57, 'gt': a3764, 'gt_h': 37, 'gt_w': 53, 'iscrowd': 0,
                      'iou': float(mask_util.iou([{'size': [5, 7], 'counts': a57}],
                                                 [{'size': [37, 53], 'counts': a3764}], [0])[0][0])})
    # box IoU pairs
    bpairs = [([0, 0, 10, 10], [0, 0, 10, 10]), ([0, 0, 10, 10], [5, 5, 10, 10]), ([0, 0, 10, 10], [10, 0, 5, 5]),
              ([0, 0, 10, 10], [2, 2, 3, 3]), ([2, 2, 3, 3], [0, 0, 10, 10]), ([0, 0, 0, 5], [0, 0, 0, 5]),
              ([0, 0, 0, 5], [0, 0, 10, 10]), ([-5.5, -2.25, 8, 4], [0, 0, 3.3, 1.1]),
              ([1, 1, 1e-3, 1e-3], [1, 1, 1, 1])]
    for _ in range(13):
        a = [r2(rng.uniform(-20, 100)), r2(rng.uniform(-20, 100)), r2(rng.uniform(0, 80)), r2(rng.uniform(0, 80))]
        b = jitter_box(a, 0.3, rng) if rng.uniform() < 0.7 else [r2(rng.uniform(-20, 100)), r2(rng.uniform(-20, 100)),
                                                                  r2(rng.uniform(0, 80)), r2(rng.uniform(0, 80))]
        bpairs.append((a, b))
    bbox_iou_cases = []
    for a, b in bpairs:
        a = [float(v) for v in a]
        b = [float(v) for v in b]
        for crowd in (0, 1):
            v = mask_util.iou(np.array([a], dtype=np.float64), np.array([b], dtype=np.float64), [crowd])
            bbox_iou_cases.append({'dt': a, 'gt': b, 'iscrowd': crowd, 'iou': float(v[0][0])})
    # merges
    merge_cases = []
    for n in range(10):
        h, w = keys[int(rng.integers(len(keys)))]
        lst = by_size[(h, w)]
        k = min(len(lst), int(rng.integers(1, 5)))
        idx = [int(v) for v in rng.choice(len(lst), k, replace=False)]
        rles = [{'size': [h, w], 'counts': lst[i]} for i in idx]
        mu = rle_str(mask_util.merge(rles, intersect=0))
        mi = rle_str(mask_util.merge(rles, intersect=1))
        merge_cases.append({'h': h, 'w': w, 'inputs': [lst[i] for i in idx], 'union': mu['counts'],
                            'intersection': mi['counts'], 'union_area': int(mask_util.area(mask_util.merge(rles))),
                            'intersection_area': int(mask_util.area(mask_util.merge(rles, intersect=1)))})
    mu = mask_util.merge([{'size': [5, 7], 'counts': a57}, {'size': [37, 53], 'counts': a3764}])
    merge_cases.append({'h': 5, 'w': 7, 'inputs': [a57, a3764], 'input_sizes': [[5, 7], [37, 53]],
                        'union': rle_str(mu)['counts'], 'union_size': [int(v) for v in mu['size']],
                        'note': 'different sizes: pycocotools returns an empty 0x0 RLE'})
    doc = {'what': 'pycocotools.mask (2.0.8) golden cases, written by tools/golden/cocoeval.py. "counts" are COCO '
                   'compressed strings; masks are h x w, column-major; polygons via frPyObjects([poly], h, w), '
                   'boxes via frPyObjects(float64 array [[x, y, w, h]], h, w) (frBbox), uncompressed RLEs via '
                   'frPyObjects({size, counts: [...]}, h, w); area = mask.area, bbox = mask.toBbox; '
                   'iou = mask.iou([dt], [gt], [iscrowd]) (for boxes on float64 [x, y, w, h] arrays); '
                   'merge = mask.merge(inputs, intersect).',
           'versions': versions(), 'polygons': poly_cases, 'boxes': box_cases, 'uncompressed': unc_cases,
           'iou': iou_cases, 'bbox_iou': bbox_iou_cases, 'merge': merge_cases}
    path = os.path.join(out, 'mask_api.json')
    # one case per line
    lines = ['{']
    items = list(doc.items())
    for n, (k, v) in enumerate(items):
        tail = ',' if n + 1 < len(items) else ''
        if isinstance(v, list):
            lines.append(json.dumps(k) + ':[')
            lines.append(',\n'.join(json.dumps(c, separators=(',', ':')) for c in v))
            lines.append(']' + tail)
        else:
            lines.append(json.dumps(k) + ':' + json.dumps(v, separators=(',', ':')) + tail)
    lines.append('}')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    with open(path) as f:
        json.load(f)  # well-formed
    return {k: len(v) for k, v in doc.items() if isinstance(v, list)}


# ---------------------------------------------------------------------------------------------------- main

def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=os.path.join(root, 'tests', 'data', 'golden', 'eval'))
    ap.add_argument('--shared', default=os.path.join(root, '..', 'shared'))
    ap.add_argument('--xt-path', default=os.path.join(root, '.venv', 'xtcoco'),
                    help='folder holding xtcocotools 1.14.3 and numpy 1.26.4 (pip install --target)')
    ap.add_argument('--xt-worker', help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.xt_worker:
        xt_worker(json.loads(args.xt_worker))
        return
    os.makedirs(args.out, exist_ok=True)
    w = Writer(args.out, args.shared, args.xt_path)
    coco_kp_path = os.path.join(args.shared, 'data/coco_keypoints/test_coco.json')
    crowd_path = os.path.join(args.shared, 'data/crowdpose/test_crowdpose.json')
    have_shared = os.path.exists(coco_kp_path) and os.path.exists(crowd_path)
    if not have_shared:
        sys.exit('error: %s or %s not found (pass --shared): the fixtures built from ../shared need them'
                 % (coco_kp_path, crowd_path))
    with open(coco_kp_path) as f:
        coco_kp = json.load(f)
    with open(crowd_path) as f:
        crowd = json.load(f)

    bbox_coco_kp(w, coco_kp)
    gt_a = bbox_synth_a(w)
    bbox_synth_maxdets(w)
    bbox_empty_dets(w, gt_a)
    segm_coco_kp(w, coco_kp)
    segm_synth_a(w)
    segm_synth_b(w)
    kp_coco(w, coco_kp)
    kp_synth_a(w)
    kp_synth_b(w)
    crowd_test(w, crowd)
    crowd_synth_a(w)
    crowd_synth_nohard(w)
    counts = mask_api(args.out)
    # the fixture list the C++ test walks (it cannot list folders portably)
    with open(os.path.join(args.out, 'index.json'), 'w') as f:
        json.dump({'fixtures': [row[0] for row in w.rows]}, f, indent=1)
        f.write('\n')

    print('%-20s %-10s %-10s %10s %6s %6s' % ('fixture', 'iou_type', 'dataset', 'stats[0]', '#gt', '#dt'))
    for name, t, ds, s0, ng, nd in w.rows:
        print('%-20s %-10s %-10s %10.6f %6d %6d' % (name, t, ds, s0, ng, nd))
    print('mask_api.json:', ', '.join('%s %d' % kv for kv in counts.items()))


if __name__ == '__main__':
    main()
