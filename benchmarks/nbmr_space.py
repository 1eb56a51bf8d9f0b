"""The NAS-Bench-MR segmentation networks, built from a row of its table.

NAS-Bench-MR (Ding et al., "Learning Versatile Neural Architectures by Propagating Network
Codes", ICLR 2022) trained 2,507 multi-resolution networks on Cityscapes
(``../shared/data/nas_bench_mr/seg.csv``). This module rebuilds any of them as a torch
model from the table's architecture columns, so that methods that need the network itself
(zero-cost proxies, :mod:`benchmarks.nbmr_proxies`) can be measured against the
benchmark's fully trained mIoU.

The family, as the benchmark's repository (dingmyu/NCP, ``models/supernet.py``) defines it,
HRNet-like and written here from that description:

- stem: two 3x3 stride-2 conv-BN-ReLU layers, widths ``input_channel[0]`` and
  ``input_channel[1]``: stride 4;
- one stage per entry ``[branches, [blocks per branch], [channels per branch]]`` of
  ``inverted_residual_setting``, each a *fusion* followed by parallel branches. Branch ``b``
  runs at stride ``4 * 2**b``. The fusion turns the previous stage's branches into this
  stage's: output branch ``i`` sums its neighbours only (input branches ``i - 1``, ``i``,
  ``i + 1``): a 3x3 stride-2 conv-BN-ReLU from the finer one, a 3x3 conv-BN-ReLU from the
  same one, a 1x1 conv-BN-ReLU then 2x nearest upsampling (then bilinear resizing to the
  exact size) from the coarser one; the sum goes through a ReLU. A stage with more branches
  than the one before grows each new branch from the previous new output by a 3x3 stride-2
  conv-BN-ReLU. Each branch is then that many residual blocks (two 3x3 conv-BN with ReLU
  between and after, identity shortcut), its width constant;
- head: every branch of the last stage is resized (bilinear) to stride 4 and concatenated,
  a 1x1 conv-BN-ReLU maps them to ``last_channel`` and a 1x1 conv with bias to the 19
  Cityscapes classes. The output is at stride 4 (the loss upsamples it).

Convolutions are initialised He-normal (fan-out), batch norms to the identity, as there.

Faithfulness check: the parameter count of every network against the table's ``params_m``
(counted by the benchmark with thop), and the convolutions' multiply-accumulates against
``flops_g``. Two facts found on the way: ``params_m`` is, to the parameter, the count of
the same network with a 50-output classifier (31 more outputs than the 19 classes it was
trained on: ``31 * (last_channel + 1)`` parameters, at most 1.3% of a network); and
``flops_g`` matches a 128x128 input, not the 224x224 of the repository's README example.

    python benchmarks/nbmr_space.py --check --data ../shared/data/nas_bench_mr/seg.csv

writes ``benchmarks/results/nbmr_builder_check.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
NUM_CLASSES = 19  # Cityscapes
# flops_g matches the convolution MACs at 128x128 (median error 0.3% on 200 networks; at the
# 224x224 of the repository's README example they are 3.1x flops_g)
FLOPS_INPUT = (128, 128)
# params_m equals, to the parameter, the network with a 50-output classifier (every checked
# network): the benchmark counted a wider classifier than the 19 Cityscapes classes it trained
TABLE_CLASSIFIER_OUTPUTS = 50
ARCH_COLUMNS = ("input_channel", "inverted_residual_setting", "last_channel")

__all__ = ["ARCH_COLUMNS", "NbmrArch", "build_network", "read_rows", "conv_macs"]


@dataclass(frozen=True)
class NbmrArch:
    """One NAS-Bench-MR segmentation architecture, as plain data.

    Attributes:
        input_channel: widths of the two stem convolutions.
        stages: one ``(branches, blocks per branch, channels per branch)`` per stage.
        last_channel: width of the head's 1x1 conv before the classifier.
    """

    input_channel: tuple[int, int]
    stages: tuple[tuple[int, tuple[int, ...], tuple[int, ...]], ...]
    last_channel: int

    @classmethod
    def from_row(cls, row: Mapping[str, object]) -> NbmrArch:
        """Parse the architecture columns of a seg.csv row (strings of JSON lists, or lists).

        Raises:
            ValueError: a missing column or a malformed setting (the message names it).
        """
        def value(column: str) -> object:
            if column not in row:
                raise ValueError(f"NAS-Bench-MR row lacks column {column!r}; expected {ARCH_COLUMNS}")
            raw = row[column]
            return json.loads(raw) if isinstance(raw, str) else raw

        stem = value("input_channel")
        stages = []
        for number, stage in enumerate(value("inverted_residual_setting")):  # type: ignore[arg-type]
            branches, blocks, channels = stage
            if not (branches == len(blocks) == len(channels) and branches >= 1):
                raise ValueError(f"stage {number}: {stage} is not [branches, [blocks] * branches, "
                                 "[channels] * branches]")
            stages.append((int(branches), tuple(int(b) for b in blocks), tuple(int(c) for c in channels)))
        if len(stem) != 2 or not stages:  # type: ignore[arg-type]
            raise ValueError(f"input_channel must hold two widths and there must be a stage, got {stem}")
        return cls((int(stem[0]), int(stem[1])), tuple(stages), int(value("last_channel")))  # type: ignore[index, arg-type]

    def to_json(self) -> str:
        """Canonical JSON of the architecture columns (no spaces, fixed key order)."""
        return json.dumps({"input_channel": list(self.input_channel),
                           "inverted_residual_setting": [[n, list(b), list(c)] for n, b, c in self.stages],
                           "last_channel": self.last_channel}, separators=(",", ":"))

    def key(self) -> str:
        """A stable 16-hex-digit key of the architecture (SHA-256 of :meth:`to_json`): the same
        network in another table of NAS-Bench-MR results gets the same key."""
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]


def _conv_bn_relu(c_in: int, c_out: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class ResidualBlock(nn.Module):
    """Two 3x3 conv-BN, ReLU between and after the identity shortcut; width constant."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act(self.bn1(self.conv1(x)))))
        return self.act(out + x)


class Fusion(nn.Module):
    """Maps ``len(c_in)`` branches to ``len(c_out)``; each output branch sums its neighbours
    (see the module docstring), new branches grow from the previous output branch."""

    def __init__(self, c_in: Sequence[int], c_out: Sequence[int]) -> None:
        super().__init__()
        n_in, n_out = len(c_in), len(c_out)
        self.merged = nn.ModuleList()
        for i in range(min(n_in, n_out)):
            terms = nn.ModuleDict()
            for j in (i - 1, i, i + 1):
                if not 0 <= j < n_in:
                    continue
                if j < i:
                    terms[str(j)] = _conv_bn_relu(c_in[j], c_out[i], 3, stride=2)
                elif j == i:
                    terms[str(j)] = _conv_bn_relu(c_in[j], c_out[i], 3)
                else:
                    terms[str(j)] = nn.Sequential(_conv_bn_relu(c_in[j], c_out[i], 1),
                                                  nn.Upsample(scale_factor=2, mode="nearest"))
            self.merged.append(terms)
        self.grown = nn.ModuleList(_conv_bn_relu(c_out[b - 1], c_out[b], 3, stride=2) for b in range(n_in, n_out))
        self.act = nn.ReLU()  # a module, not F.relu, so that activation hooks (NASWOT) see the sums

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        outs = []
        for i, terms in enumerate(self.merged):
            total = None
            for j, term in terms.items():  # in order i-1, i, i+1: the first sets the size
                y = term(xs[int(j)])
                if total is None:
                    total = y
                else:
                    if y.shape[2:] != total.shape[2:]:
                        y = F.interpolate(y, size=total.shape[2:], mode="bilinear", align_corners=False)
                    total = total + y
            outs.append(self.act(total))
        for grow in self.grown:
            outs.append(grow(outs[-1]))
        return outs


class Branches(nn.Module):
    """Parallel branches of residual blocks, one per resolution."""

    def __init__(self, blocks: Sequence[int], channels: Sequence[int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(*(ResidualBlock(c) for _ in range(n)))
                                      for n, c in zip(blocks, channels))

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        return [branch(x) for branch, x in zip(self.branches, xs)]


class MultiResolutionSegNet(nn.Module):
    """A NAS-Bench-MR segmentation network; ``forward`` returns logits at stride 4."""

    def __init__(self, arch: NbmrArch, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.arch = arch
        c0, c1 = arch.input_channel
        self.stem = nn.Sequential(_conv_bn_relu(3, c0, 3, stride=2), _conv_bn_relu(c0, c1, 3, stride=2))
        stages: list[nn.Module] = []
        widths: Sequence[int] = (c1,)
        for _, blocks, channels in arch.stages:
            stages += [Fusion(widths, channels), Branches(blocks, channels)]
            widths = channels
        self.stages = nn.Sequential(*stages)
        self.transform = _conv_bn_relu(sum(widths), arch.last_channel, 1)
        self.classifier = nn.Conv2d(arch.last_channel, num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = self.stages([self.stem(x)])
        size = xs[0].shape[2:]
        xs = [xs[0]] + [F.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in xs[1:]]
        return self.classifier(self.transform(torch.cat(xs, dim=1)))


def build_network(arch: NbmrArch | Mapping[str, object], num_classes: int = NUM_CLASSES) -> MultiResolutionSegNet:
    """The torch model of an architecture (or of a seg.csv row), freshly initialised."""
    return MultiResolutionSegNet(arch if isinstance(arch, NbmrArch) else NbmrArch.from_row(arch), num_classes)


def read_rows(path: str | Path) -> list[dict[str, str]]:
    """The rows of a NAS-Bench-MR CSV (seg.csv) as dicts of strings.

    Raises:
        SystemExit: the file is missing or lacks the architecture columns (message says which).
    """
    import csv

    path = Path(path)
    if not path.is_file():
        raise SystemExit(f"{path}: no such file; pass --data with NAS-Bench-MR's seg.csv "
                         "(../shared/data/nas_bench_mr/seg.csv)")
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    missing = [c for c in ARCH_COLUMNS if rows and c not in rows[0]]
    if not rows or missing:
        raise SystemExit(f"{path}: not a NAS-Bench-MR table (missing columns {missing or list(ARCH_COLUMNS)})")
    return rows


def conv_macs(model: nn.Module, resolution: tuple[int, int]) -> int:
    """Multiply-accumulates of the convolutions (bias included, as thop counts them) for one
    image at ``resolution`` (H, W); shapes only, so the model may live on the meta device."""
    total = 0

    def count(m: nn.Conv2d, _inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        nonlocal total
        per_output = m.in_channels // m.groups * m.kernel_size[0] * m.kernel_size[1] + (m.bias is not None)
        total += out.numel() * per_output

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, *resolution, device=device))
    finally:
        for hook in hooks:
            hook.remove()
    return total


def check(data: Path, out: Path) -> dict:
    """Parameters and convolution MACs of every network built here against the table."""
    rows = read_rows(data)
    cases = []
    start = time.perf_counter()
    extra = TABLE_CLASSIFIER_OUTPUTS - NUM_CLASSES
    pixels = (FLOPS_INPUT[0] // 4) * (FLOPS_INPUT[1] // 4)  # the classifier runs at stride 4
    for row in rows:
        model = build_network(row)  # on the CPU: building under torch.device("meta") is slower
        params = sum(p.numel() for p in model.parameters())
        macs = conv_macs(model.to("meta"), FLOPS_INPUT)
        # the table's counts are those of a classifier with 50 outputs: add its extra rows
        params_table_head = params + extra * (model.arch.last_channel + 1)
        macs_table_head = macs + extra * (model.arch.last_channel + 1) * pixels
        table_params, table_flops = float(row["params_m"]) * 1e6, float(row["flops_g"]) * 1e9
        cases.append({"index": int(row["index"]), "key": model.arch.key(), "params": params,
                      "params_50_outputs": params_table_head, "params_table": round(table_params),
                      "params_rel_err": params / table_params - 1,
                      "params_50_outputs_rel_err": params_table_head / table_params - 1,
                      "conv_macs": macs, "conv_macs_50_outputs": macs_table_head, "flops_table": round(table_flops),
                      "flops_rel_err": macs_table_head / table_flops - 1})
    errors = sorted(cases, key=lambda c: -abs(c["params_rel_err"]))
    flops_sorted = sorted(cases, key=lambda c: -abs(c["flops_rel_err"]))
    flops_err = sorted(abs(c["flops_rel_err"]) for c in cases)
    n = len(cases)
    result = {
        "data": str(data), "networks": n, "seconds": round(time.perf_counter() - start, 1),
        "unique_architecture_keys": len({c["key"] for c in cases}),
        "params_note": (f"trainable parameters of the build with the {NUM_CLASSES}-class classifier against params_m; "
                        f"params_m matches the same network with a {TABLE_CLASSIFIER_OUTPUTS}-output classifier"),
        "params_within_2pct_share": sum(abs(c["params_rel_err"]) <= 0.02 for c in cases) / n,
        "params_max_abs_rel_err": abs(errors[0]["params_rel_err"]),
        "params_exact_share_50_outputs": sum(c["params_50_outputs"] == c["params_table"] for c in cases) / n,
        "params_max_abs_diff_50_outputs": max(abs(c["params_50_outputs"] - c["params_table"]) for c in cases),
        "params_worst": errors[:10],
        "flops_note": (f"convolution multiply-accumulates (bias included) at {FLOPS_INPUT[0]}x{FLOPS_INPUT[1]} with "
                       f"the {TABLE_CLASSIFIER_OUTPUTS}-output classifier against flops_g (thop, which also "
                       "counts batch norms and nn.Upsample but not F.interpolate)"),
        "flops_input": list(FLOPS_INPUT),
        "flops_within_2pct_share": sum(e <= 0.02 for e in flops_err) / n,
        "flops_within_5pct_share": sum(e <= 0.05 for e in flops_err) / n,
        "flops_median_abs_rel_err": flops_err[n // 2],
        "flops_max_abs_rel_err": flops_err[-1],
        "flops_worst": flops_sorted[:5],
    }
    sys.path.insert(0, str(ROOT))
    from search_space.records import write_atomic

    write_atomic(out, json.dumps(result, indent=1) + "\n")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare parameters and MACs with the table")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/nas_bench_mr/seg.csv",
                        help="NAS-Bench-MR seg.csv")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/nbmr_builder_check.json")
    args = parser.parse_args(argv)
    if not args.check:
        parser.print_help()
        return 0
    r = check(args.data, args.out)
    print(f"{r['networks']} networks ({r['unique_architecture_keys']} distinct keys) in {r['seconds']} s")
    print(f"parameters within 2% of params_m: {r['params_within_2pct_share']:.1%} "
          f"(worst {r['params_max_abs_rel_err']:.3%}); with a {TABLE_CLASSIFIER_OUTPUTS}-output classifier "
          f"exactly equal for {r['params_exact_share_50_outputs']:.1%} "
          f"(largest difference {r['params_max_abs_diff_50_outputs']} parameters)")
    for c in r["params_worst"][:5]:
        print(f"  index {c['index']}: {c['params']} built vs {c['params_table']} in the table "
              f"({c['params_rel_err']:+.3%})")
    print(f"conv MACs at {FLOPS_INPUT[0]}x{FLOPS_INPUT[1]} vs flops_g: within 2% {r['flops_within_2pct_share']:.1%}, within 5% "
          f"{r['flops_within_5pct_share']:.1%}, median |error| {r['flops_median_abs_rel_err']:.2%}, "
          f"worst {r['flops_max_abs_rel_err']:.2%}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
