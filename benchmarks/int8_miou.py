"""int8 against fp32 on briefly trained networks: the mIoU each loses (or gains) in int8.

For each network that ``evit-nas validate`` trained in a folder (its checkpoint), the mIoU
on its data set's validation split, as an fp32 and as an int8 ONNX model at the training
size, int8 calibrated on 8 training images (``reports.fidelity.miou_change``, as the
report does for a study's trained networks)::

    evit-nas validate efficientvit_seg_b0 efficientvit_seg_b1 --dataset camvid:../shared/data/camvid \\
        --steps 1000 --out runs/camvid
    python benchmarks/int8_miou.py --trained runs/camvid

Writes ``results/int8_miou.{csv,json}`` with the CPU model, onnxruntime and torch versions.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from nas.validate import open_datasets, trained_in  # noqa: E402
from reports.fidelity import miou_change  # noqa: E402
from search_space.records import cpu_model, write_atomic, write_csv  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
COLUMNS = ("network", "dataset", "steps", "resolution", "images", "fp32_miou", "int8_miou", "miou_change",
           "validate_miou", "float_ops")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trained", type=Path, required=True, metavar="DIR",
                        help="a folder evit-nas validate wrote (results.csv, checkpoints/)")
    parser.add_argument("--images", type=int, default=0, help="validation images compared (default 0: all)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default benchmarks/results)")
    args = parser.parse_args()
    trained = trained_in(args.trained)
    if not trained:
        parser.error(f"{args.trained}: no trained network with its checkpoint (expected results.csv and checkpoints/ "
                     "written by evit-nas validate)")
    import onnxruntime
    import torch

    rows = []
    for name, (model, row) in trained.items():
        resolution = tuple(int(v) for v in row["resolution"].split("x"))
        train_set, val_set = open_datasets(row["dataset"], resolution)
        result = miou_change(model, train_set, val_set, resolution, images=args.images or len(val_set))
        rows.append({"network": name, "dataset": row["dataset"], "steps": row["steps"], "resolution": row["resolution"],
                     "images": result["images"], "fp32_miou": result["fp32_miou"], "int8_miou": result["int8_miou"],
                     "miou_change": result["miou_change"], "validate_miou": round(row["miou"], 2),
                     "float_ops": " ".join(f"{op}x{n}" for op, n in result["float_ops"].items())})
        print(f"{name} ({row['steps']} steps on {row['dataset']}, {row['resolution']}, {result['images']} images): "
              f"fp32 {result['fp32_miou']:.2f} mIoU, int8 {result['int8_miou']:.2f} ({result['miou_change']:+.2f})",
              flush=True)
    info = {"trained_from": str(args.trained), "cpu": cpu_model(), "machine": platform.machine(),
            "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
            "quantization": "onnxruntime static, QDQ, per-channel int8 weights, uint8 activations, min-max on 8 "
                            "training images"}
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "int8_miou.csv", COLUMNS, rows, info)
    write_atomic(args.out / "int8_miou.json", json.dumps({**info, "rows": rows}, indent=1))
    print(f"wrote {args.out / 'int8_miou.csv'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
