"""The paper's segmentation speed claims at the published resolutions (Cityscapes 1024x2048,
ADE20K 512x512), in fp32 and int8, each ratio with a bootstrap 95% confidence interval;
and the int8 fidelity of B0-B3 and the peers (share of pixels with the fp32 class).

Speed: the networks of ``reports.comparison.SPEEDUP_PAIRS`` for a data set are exported whole
(``latency_tables.bundle.export_bundle``: the fp32 file, or the int8 one quantized as
``--precision int8`` does, calibrated on ``--calib-images`` synthetic images) and loaded
together into onnxruntime with the timing protocol's session options (``records.session_options``;
batch 1, ``--threads``). After ``--warmup`` untimed runs each, ``--rounds`` rounds follow;
in each round every network runs once, in a fresh random order (interleaved, so that a slow
spell of the machine touches every network). A speedup is the peer's median over the
EfficientViT network's median; its interval is the 2.5-97.5 percentile of the same ratio
over 2,000 bootstrap resamples of the rounds (paired: a resample keeps both networks' times
of a round together). At 1024x2048 (``--pairwise``) each pair is its own group, loaded and
timed on its own: the eight networks' sessions together need more than 24 GB.

Fidelity: each network (Cityscapes configuration, 19 classes, random initialisation: no
ImageNet or Cityscapes weights can be downloaded here) exported at ``--fidelity-size``,
quantized on 8 synthetic training images, and compared with its fp32 export on 8 synthetic
validation images: the share of output pixels whose argmax class is the same. Random
networks are a stand-in; trained ones are compared in the report where validate trained them.

    python benchmarks/speed_claims.py                         # both data sets, fp32 and int8, 20 rounds
    python benchmarks/speed_claims.py --datasets ade20k --precisions int8 --rounds 30
    python benchmarks/speed_claims.py --calib-images 1 --skip segformer_b3@cityscapes/int8   # what ran here

Resumable: timings are appended to ``results/speed_claims_samples.json`` after every round;
a rerun continues to ``--rounds``. Writes ``results/speed_claims.json`` and ``.csv`` with the
CPU model, onnxruntime version and threads.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import onnxruntime as ort  # noqa: E402

from latency_tables.bundle import export_bundle, network_id  # noqa: E402
from latency_tables.quantize import QuantCalibration, argmax_agreement, quantize_int8  # noqa: E402
from nas.data import image_arrays, open_dataset  # noqa: E402
from reports.comparison import SPEEDUP_PAIRS  # noqa: E402
from search_space.cost import export_onnx  # noqa: E402
from search_space.create import build_network  # noqa: E402
from search_space.peers import published  # noqa: E402
from search_space.records import cpu_model, session_options, write_atomic, write_csv  # noqa: E402
from search_space.registry import model_spec  # noqa: E402
from search_space.spec import DATASETS  # noqa: E402
from evit_nas.args import parse_threads  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
FIDELITY_NETWORKS = ("efficientvit_seg_b0", "efficientvit_seg_b1", "efficientvit_seg_b2", "efficientvit_seg_b3",
                     "segformer_b0", "segformer_b1", "segformer_b2", "segformer_b3", "segnext_t", "segnext_s",
                     "hrformer_s")
BOOTSTRAP = 2000


def synthetic_images(size: tuple[int, int], count: int, split: str) -> tuple[np.ndarray, ...]:
    return image_arrays(open_dataset("synthetic", split, size, seed=0, length=count), count)


def ratio_interval(ours: np.ndarray, peer: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float]:
    """median(peer) / median(ours), and its bootstrap 95% interval over paired rounds."""
    ratio = float(np.median(peer) / np.median(ours))
    picks = rng.integers(0, len(ours), size=(BOOTSTRAP, len(ours)))
    boot = np.median(peer[picks], axis=1) / np.median(ours[picks], axis=1)
    return ratio, float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def time_rounds(dataset: str, precision: str, names: list[str], key: str, args, store: dict, save
                ) -> dict[str, list[float]]:
    """``args.rounds`` interleaved rounds of ``names`` (one group, loaded together), kept under ``key``."""
    size = DATASETS[dataset].resolution
    samples = store.setdefault(key, {n: [] for n in names})
    if min(len(samples[n]) for n in names) >= args.rounds:
        return samples
    specs = {n: model_spec(n, dataset) for n in names}
    calibration = QuantCalibration(f"synthetic: {args.calib_images} images",
                                   synthetic_images(size, args.calib_images, "train")) if precision == "int8" else None
    started = time.monotonic()
    manifest = export_bundle(args.work / key, size, networks=list(specs.values()), precision=precision,
                             calibration=calibration)
    files = {e["id"]: args.work / key / e["file"] for e in manifest["entries"]}
    float_ops = {n: next(e.get("float_ops", {}) for e in manifest["entries"] if e["id"] == network_id(s))
                 for n, s in specs.items()}
    store.setdefault("float_ops", {})[key] = float_ops
    print(f"{key}: exported {len(names)} networks at {size[0]}x{size[1]} in {time.monotonic() - started:.0f} s",
          flush=True)
    sessions = {n: ort.InferenceSession(str(files[network_id(s)]), session_options(ort, args.threads),
                                        providers=["CPUExecutionProvider"]) for n, s in specs.items()}
    x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
    feeds = {n: {s.get_inputs()[0].name: x} for n, s in sessions.items()}
    for n, s in sessions.items():
        for _ in range(args.warmup):
            s.run(None, feeds[n])
    rng = np.random.default_rng(len(samples[names[0]]))
    while min(len(samples[n]) for n in names) < args.rounds:
        for n in rng.permutation(names):
            begin = time.perf_counter()
            sessions[n].run(None, feeds[n])
            samples[n].append((time.perf_counter() - begin) * 1e3)
        save()
        done = min(len(samples[n]) for n in names)
        print(f"{key}: round {done}/{args.rounds} " + " ".join(f"{n}={samples[n][-1]:.0f}ms" for n in names), flush=True)
    return samples


def fidelity(args) -> list[dict]:
    rows = []
    size = args.fidelity_size
    calib = QuantCalibration("synthetic: 8 images", synthetic_images(size, 8, "train"))
    held_out = QuantCalibration("", synthetic_images(size, 8, "val")).inputs((1, 3, *size))
    for name in FIDELITY_NETWORKS:
        fp32 = args.work / "fidelity" / f"{name}.onnx"
        int8 = args.work / "fidelity" / f"{name}.int8.onnx"
        fp32.parent.mkdir(parents=True, exist_ok=True)
        import torch

        torch.manual_seed(0)
        export_onnx(build_network(model_spec(name, "cityscapes")).eval(), (1, 3, *size), fp32)
        float_ops = quantize_int8(fp32, int8, calib.inputs((1, 3, *size)))
        agreement = argmax_agreement(fp32, int8, held_out)
        rows.append({"network": name, "resolution": f"{size[0]}x{size[1]}", "argmax_agreement_pct": round(100 * agreement, 2),
                     "float_ops": json.dumps(float_ops)})
        print(f"fidelity {name}: {100 * agreement:.2f}% of pixels keep their fp32 class; in fp32: {float_ops}", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["ade20k", "cityscapes"], choices=["ade20k", "cityscapes"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "int8"], choices=["fp32", "int8"])
    parser.add_argument("--rounds", type=int, default=20, help="timed rounds (default: 20)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per network first (default: 2)")
    parser.add_argument("--threads", type=parse_threads, default=1, help="onnxruntime intra-op threads (default: 1)")
    parser.add_argument("--calib-images", type=int, default=2,
                        help="int8 calibration images for the timed models (default: 2; latency does not depend on them)")
    parser.add_argument("--fidelity-size", type=lambda t: tuple(int(v) for v in t.split("x")), default=(256, 512))
    parser.add_argument("--no-fidelity", action="store_true")
    parser.add_argument("--pairwise", nargs="+", default=["cityscapes"], choices=["ade20k", "cityscapes"],
                        help="data sets whose pairs are timed as separate groups of two (default: cityscapes; all "
                        "eight networks at 1024x2048 do not fit in 24 GB together)")
    parser.add_argument("--skip", nargs="+", default=[], metavar="NAME@DATASET/PRECISION",
                        help="networks not timed, e.g. segformer_b3@cityscapes/int8 (its int8 calibration at 1024x2048 "
                        "keeps every activation of the network in memory: more than this 24 GB machine has)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: benchmarks/results)")
    parser.add_argument("--work", type=Path, help="exported models (default: OUT/speed_claims.work)")
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    args.work = args.work or out / "speed_claims.work"

    samples_path = out / "speed_claims_samples.json"
    store = json.loads(samples_path.read_text()) if samples_path.exists() else {}
    meta = {"cpu": cpu_model(), "machine": platform.node(), "arch": platform.machine(), "onnxruntime": ort.__version__,
            "threads": args.threads, "batch": 1}
    if store.get("meta", meta) != meta:
        raise SystemExit(f"{samples_path} holds timings of another machine or setting ({store['meta']}); move it away")
    store["meta"] = meta

    def save():
        write_atomic(samples_path, json.dumps(store) + "\n")

    rng = np.random.default_rng(0)
    pub = {(r["model"], r["dataset"]): r for r in published()}
    rows = []
    for dataset in args.datasets:
        for precision in args.precisions:
            pairs = [(a, b) for a, b, d in SPEEDUP_PAIRS if d == dataset]
            skipped = {n for a, b in pairs for n in (a, b) if f"{n}@{dataset}/{precision}" in args.skip}
            if dataset in args.pairwise:  # each pair its own group: the memory of two networks at a time
                samples = {}
                for a, b in pairs:
                    if not {a, b} & skipped:
                        group = time_rounds(dataset, precision, [a, b], f"{dataset}/{precision}/{a}+{b}", args, store,
                                            save)
                        samples[(a, b)] = group
            else:
                names = [n for n in dict.fromkeys(n for pair in pairs for n in pair) if n not in skipped]
                group = time_rounds(dataset, precision, names, f"{dataset}/{precision}", args, store, save)
                samples = {(a, b): group for a, b in pairs if not {a, b} & skipped}
            size = DATASETS[dataset].resolution
            for ours, peer in pairs:
                if (ours, peer) not in samples:
                    print(f"{dataset} {precision}: {peer} / {ours} left out (--skip)", flush=True)
                    continue
                group = samples[(ours, peer)]
                a, b = np.array(group[ours][:args.rounds]), np.array(group[peer][:args.rounds])
                ratio, low, high = ratio_interval(a, b, rng)
                pa, pb = pub.get((ours, dataset), {}), pub.get((peer, dataset), {})

                def published_ratio(column, same_size=""):
                    if same_size and pa.get(same_size) != pb.get(same_size):
                        return None  # points at different input sizes do not make a ratio
                    try:
                        return round(float(pb[column]) / float(pa[column]), 2)
                    except (KeyError, TypeError, ValueError):
                        return None

                rows.append({
                    "dataset": dataset, "resolution": f"{size[0]}x{size[1]}", "precision": precision,
                    "efficientvit": ours, "peer": peer, "rounds": len(a),
                    "efficientvit_ms": round(float(np.median(a)), 2),
                    "efficientvit_p10_p90_ms": f"{np.percentile(a, 10):.2f}-{np.percentile(a, 90):.2f}",
                    "peer_ms": round(float(np.median(b)), 2),
                    "peer_p10_p90_ms": f"{np.percentile(b, 10):.2f}-{np.percentile(b, 90):.2f}",
                    "measured_speedup": round(ratio, 3), "ci95_low": round(low, 3), "ci95_high": round(high, 3),
                    "published_orin_speedup": published_ratio("latency_orin_ms"),
                    "published_mobile_speedup": published_ratio("latency_mobile_ms", "mobile_resolution_hw"),
                })
                print(f"{dataset} {precision}: {peer} / {ours} = {ratio:.2f}x (95% CI {low:.2f}-{high:.2f}); "
                      f"published Orin {rows[-1]['published_orin_speedup']}", flush=True)
    fidelity_rows = [] if args.no_fidelity else fidelity(args)
    result = {**meta, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "rounds": args.rounds,
              "bootstrap_resamples": BOOTSTRAP, "calibration_images": args.calib_images, "speedups": rows,
              "float_ops": store.get("float_ops", {}), "fidelity": fidelity_rows}
    write_atomic(out / "speed_claims.json", json.dumps(result, indent=1) + "\n")
    if rows:
        write_csv(out / "speed_claims.csv", tuple(rows[0]), rows, meta)
    if fidelity_rows:
        write_csv(out / "int8_fidelity.csv", tuple(fidelity_rows[0]), fidelity_rows, meta)
    print(f"wrote {out / 'speed_claims.json'} ({meta['cpu']}, onnxruntime {meta['onnxruntime']}, "
          f"{args.threads} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
