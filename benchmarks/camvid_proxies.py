"""Which accuracy objective tracks brief training on CamVid? The proxy study.

Ground truth: the CamVid test-retest study (``camvid_ranking.py``): per network, the mIoU
averaged over its two seeds at one step count (default: the largest with every network
trained twice, else the largest with any). The networks are those of ``camvid_networks.json``
(B0, B1, net00..net15), ``camvid_wide_networks.json`` (wide00..wide15 and the front networks,
``camvid_wide.py``) and the searched network of ``camvid_checks_networks.json``, each counted
once both its seeds are in ``camvid_runs.csv``. Each proxy of ``nas.proxy.PROXIES`` scores
them (11-class heads; MACs at the 192x256 training crop; naswot and synflow at their own
input sizes), and the learned predictor (``nas.predictor``) is judged by cross-validation:
each network predicted by a fit that did not see it. Kendall tau (with a bootstrap 95%
interval over networks) and Spearman rho against the ground truth, next to the noise ceiling:
the same statistics between the two seeds of the training itself, which no proxy can be
expected to beat by much.

    PYTHONPATH=. python benchmarks/camvid_proxies.py [--steps 500] [--write-predictor]

Writes ``benchmarks/results/camvid_proxies.json`` (and a scatter PNG); with
``--write-predictor`` the predictor fitted on all networks becomes the shipped one
(``nas/camvid_predictor.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from brief_runs import read_rows, save_figure, write_json

from latency_tables.validate import kendall, spearman
from camvid_ranking import make_recipe, recipe_json, study_lr
from nas.predictor import DEFAULT_PREDICTOR, cv_predictions, fit_predictor, spec_features, training_conditions
from nas.proxy import PROXIES, make_proxy
from search_space import ArchSpec

RESULTS = ROOT / "benchmarks" / "results"
SEEDS = (0, 1)
NETWORK_FILES = ("camvid_networks.json", "camvid_wide_networks.json", "camvid_checks_networks.json")
BOOTSTRAP = 2000


def kendall_interval(values: list[float], truth: list[float], draws: int = BOOTSTRAP, seed: int = 0) -> list[float]:
    """Bootstrap 95% interval of Kendall tau: networks resampled with replacement."""
    import numpy as np

    rng = np.random.default_rng(seed)
    v, t = np.asarray(values), np.asarray(truth)
    taus = [kendall(v[i], t[i]) for i in (rng.integers(0, len(t), len(t)) for _ in range(draws))]
    return [round(float(np.nanpercentile(taus, 2.5)), 3), round(float(np.nanpercentile(taus, 97.5)), 3)]


def ground_truth(steps: int | None, only: list[str] | None = None) -> tuple[int, dict[str, dict], dict[str, tuple[float, float]]]:
    networks = {n["name"]: n for f in NETWORK_FILES if (RESULTS / f).is_file()
                for n in json.loads((RESULTS / f).read_text())["networks"] if "spec" in n}
    runs: dict[tuple[str, int], dict[int, float]] = {}
    recipe = recipe_json(study_lr())
    for row in read_rows(RESULTS / "camvid_runs.csv"):
        if row["recipe"] != recipe:  # not the study's recipe
            continue
        runs.setdefault((row["network"], int(row["steps"])), {})[int(row["seed"])] = float(row["miou"])
    paired = {key: seeds for key, seeds in runs.items() if all(s in seeds for s in SEEDS)}
    counts = sorted({k[1] for k in paired})
    if steps is None:
        steps = max(counts, key=lambda c: (sum(k[1] == c and k[0] in networks for k in paired), c))
    miou = {name: (seeds[SEEDS[0]], seeds[SEEDS[1]]) for (name, c), seeds in paired.items()
            if c == steps and name in networks and (not only or name in only)}
    if len(miou) < 5:
        raise SystemExit(f"only {len(miou)} network(s) trained with both seeds at {steps} steps; run camvid_ranking.py")
    return steps, networks, miou


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, help="step count of the ground truth (default: the largest complete)")
    parser.add_argument("--networks", nargs="+", metavar="NAME", help="only these networks (default: every network "
                        "of the study with both seeds done)")
    parser.add_argument("--out", help="results JSON (default: results/camvid_proxies.json; the PNG beside it)")
    parser.add_argument("--write-predictor", action="store_true", help=f"save the fitted predictor as {DEFAULT_PREDICTOR.name}")
    args = parser.parse_args(argv)
    steps, networks, miou = ground_truth(args.steps, args.networks)
    names = sorted(miou)
    specs = [ArchSpec.from_dict(networks[n]["spec"]) for n in names]
    truth = [sum(miou[n]) / 2 for n in names]
    seed_a, seed_b = [miou[n][0] for n in names], [miou[n][1] for n in names]
    report = {"command": "python " + " ".join(["benchmarks/camvid_proxies.py", *(argv if argv is not None else sys.argv[1:])]),
              "steps": steps, "networks": len(names), "ground_truth": "mean mIoU (%) of seeds 0 and 1, CamVid val",
              "noise_ceiling": {"kendall_seed0_vs_seed1": round(kendall(seed_a, seed_b), 3),
                                "spearman_seed0_vs_seed1": round(spearman(seed_a, seed_b), 3)},
              "proxies": {}}
    scores: dict[str, list[float]] = {}
    for name in [p for p in PROXIES if p != "learned"]:  # the learned one is judged by leave-one-out below
        proxy = make_proxy(name, (192, 256))
        scores[name] = [float(proxy(spec)) for spec in specs]
        print(f"{name:>8}: scored {len(specs)} networks", flush=True)
    import numpy as np

    x = np.array([spec_features(s) for s in specs])
    predictor = fit_predictor(specs, truth, source=f"camvid_runs.csv, {steps} steps, {len(names)} networks x 2 seeds",
                              trained_with=training_conditions("camvid", make_recipe(steps, 0, study_lr()).to_dict()))
    scores["learned (cross-validated)"] = cv_predictions(x, np.array(truth)).tolist()
    for name, values in scores.items():
        report["proxies"][name] = {"kendall": round(kendall(values, truth), 3),
                                   "kendall_95": kendall_interval(values, truth),
                                   "spearman": round(spearman(values, truth), 3), "values": [round(v, 4) for v in values]}
    report["learned_predictor"] = predictor.to_dict()
    report["names"], report["miou"] = names, [round(v, 3) for v in truth]
    best = max(report["proxies"], key=lambda k: report["proxies"][k]["kendall"])
    report["best"] = best
    ceiling = report["noise_ceiling"]
    print(f"{steps} steps, {len(names)} networks; noise ceiling (seed 0 vs seed 1): Kendall "
          f"{ceiling['kendall_seed0_vs_seed1']:.3f}, Spearman {ceiling['spearman_seed0_vs_seed1']:.3f}")
    for name, r in report["proxies"].items():
        print(f"  {name:>26}: Kendall {r['kendall']:+.3f} (95% {r['kendall_95'][0]:+.2f} to {r['kendall_95'][1]:+.2f})"
              f"  Spearman {r['spearman']:+.3f}")
    print(f"best: {best}")
    out = Path(args.out) if args.out else RESULTS / "camvid_proxies.json"
    write_json(out, report)
    plot(report, out.with_suffix(".png"))
    if args.write_predictor:
        predictor.save(DEFAULT_PREDICTOR)
        print(f"wrote {DEFAULT_PREDICTOR.relative_to(ROOT)}")
    return 0


def plot(report: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = list(report["proxies"].items())
    fig, axes = plt.subplots(1, len(items), figsize=(3.2 * len(items), 3.2))
    for ax, (name, r) in zip(axes, items):
        ax.scatter(r["values"], report["miou"], s=14)
        ax.set_title(f"{name}\nKendall {r['kendall']:+.2f}", fontsize=8)
        ax.set_ylabel("CamVid mIoU (%)", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"proxies vs brief training on CamVid, {report['steps']} steps, {report['networks']} networks",
                 fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


if __name__ == "__main__":
    sys.exit(main())
