"""Parameters and fvcore MACs of the re-implemented peers against their published numbers.

For each peer (``search_space.peers``) and each dataset with a published row: parameters
with that dataset's classes (19 Cityscapes, 150 ADE20K), fvcore MACs (``search_space.cost.count_macs``)
at the published resolution (1024x2048, 512x512), the published numbers, and the gaps in
percent; plus fvcore's MACs of the token-mixing products (SegFormer's attention matmuls,
SegNeXt's NMF bmms), the part that counters treat differently. Results go to
``results/peer_costs.{csv,json}``.

    python benchmarks/peer_costs.py            # 11 rows, about 5 minutes on one core

Results (fvcore 0.1.5, torch 2.13; every gap is under 10%):

- Parameters are within 2% of the published counts except SegFormer-B0 on Cityscapes
  (3.719M vs 3.8M, -2.1%): the SegFormer paper gives one count per model, that of the
  150-class ADE20K head (ours 3.753M, -1.2%, i.e. within the rounding of "3.8"); the
  19-class head has 131 x 257 = 33.7k fewer weights.
- SegFormer MACs are 0.3-3.0% from the paper's. fvcore counts the attention matmuls
  (Q K^T and A V, 2 N N' C per block, N' = N / sr^2): 55% of B0's MACs at 1024x2048
  (66.6 of 121.7G), less in the deeper models. NVlabs/SegFormer's tools/get_flops.py
  adds the same term (``sra_flops``) to mmcv's per-module counts, which is why the
  totals agree; the residue, under 3%, is the counters' differing rules for what mmcv
  counts and fvcore does not (conv/linear bias adds, 2 per element for affine norms) and
  the reverse (the decoder's functional bilinear upsampling, 0.4G for B0).
- SegNeXt-T: 50.5G at 1024x2048 and 6.45G at 512x512, 9.8% and 7.9% under the SegNeXt
  README's 56G / 7G but 1.0% and 2.3% under the EfficientViT paper's re-count (51G /
  6.6G). SegNeXt-S, same code and counter, is 0.3% / 1.8% under the README (125G / 16G),
  so the README's T figures are the outliers, not the architecture. The NMF's bmms are a
  small, resolution-linear part (2.4G / 0.3G with 16 bases, 7+1 multiplicative steps);
  the softmax, GELU and the elementwise products (MSCA gating, layer scale, NMF updates)
  have no multiply-accumulates and are not counted by fvcore or by the papers.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import fvcore
import torch
from fvcore.nn import FlopCountAnalysis

from search_space import cost
from search_space.peers import PEERS, build_peer, published
from search_space.records import write_atomic, write_csv
from search_space.registry import model_entry
from evit_nas.args import parse_threads  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CLASSES = {"cityscapes": 19, "ade20k": 150}
COLUMNS = [
    "model", "family", "dataset", "resolution_hw", "num_classes",
    "params_m", "published_params_m", "params_gap_pct",
    "macs_g", "published_macs_g", "macs_gap_pct", "token_mixing_macs_g", "count_s",
]


def token_mixing_macs(model: torch.nn.Module, height: int, width: int) -> int:
    """fvcore MACs of the matmul / bmm ops alone (attention, NMF)."""
    analysis = FlopCountAnalysis(model.eval(), torch.zeros(1, 3, height, width))
    analysis.unsupported_ops_warnings(False)
    analysis.uncalled_modules_warnings(False)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_op = analysis.by_operator()
    return int(by_op.get("matmul", 0) + by_op.get("bmm", 0))


def gap(ours: float, theirs: float | None) -> float | None:
    return None if theirs is None else round(100 * (ours / theirs - 1), 1)


def measure(row: dict) -> dict:
    """One result row for one published (model, dataset) row."""
    name, dataset = row["model"], row["dataset"]
    height, width = (int(v) for v in row["resolution_hw"].split("x"))
    model = build_peer(name, CLASSES[dataset]).eval()
    params_m = sum(p.numel() for p in model.parameters()) / 1e6
    start = time.perf_counter()
    macs_g = cost.count_macs(model, (height, width)) / 1e9
    mixing_g = token_mixing_macs(model, height, width) / 1e9
    return {
        "model": name, "family": model_entry(name).family, "dataset": dataset,
        "resolution_hw": row["resolution_hw"], "num_classes": CLASSES[dataset],
        "params_m": round(params_m, 3), "published_params_m": row["params_m"],
        "params_gap_pct": gap(params_m, row["params_m"]),
        "macs_g": round(macs_g, 2), "published_macs_g": row["macs_g"],
        "macs_gap_pct": gap(macs_g, row["macs_g"]),
        "token_mixing_macs_g": round(mixing_g, 2),
        "count_s": round(time.perf_counter() - start, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=PEERS, default=list(PEERS))
    parser.add_argument("--threads", type=parse_threads, default=1, help="torch threads (default 1: leaves a core free)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    rows = []
    print(f"{'model':14} {'dataset':10} {'params M':>9} {'pub':>6} {'gap%':>6} {'MACs G':>8} {'pub':>7} {'gap%':>6} {'mix G':>6}")
    for pub in published():
        if pub["model"] not in args.models:
            continue
        r = measure(pub)
        rows.append(r)
        print(f"{r['model']:14} {r['dataset']:10} {r['params_m']:9.3f} {r['published_params_m']:6.1f} "
              f"{r['params_gap_pct']:6.1f} {r['macs_g']:8.2f} {r['published_macs_g']:7.1f} {r['macs_gap_pct']:6.1f} "
              f"{r['token_mixing_macs_g']:6.2f}", flush=True)

    meta = {
        "counter": "fvcore FlopCountAnalysis via search_space.cost.count_macs (1 MAC per multiply-accumulate; "
                   "conv, linear, matmul, bmm, norms, bilinear upsampling)",
        "fvcore": getattr(fvcore, "__version__", "unknown"), "torch": torch.__version__,
        "published": "search_space/peers/published.csv (source per row there)",
    }
    write_csv(RESULTS / "peer_costs.csv", COLUMNS, rows, meta)
    write_atomic(RESULTS / "peer_costs.json", json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
