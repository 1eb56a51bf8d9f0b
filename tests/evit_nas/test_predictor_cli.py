"""`evit-nas predictor fit`: validate results in, a predictor that `search --proxy learned:FILE` reads out."""

import json

from evit_nas.main import main
from nas.predictor import load_predictor, spec_features
from nas.validate import COLUMNS
from search_space import SearchSpace
from search_space.records import write_csv


def _results(path, specs, dataset="camvid:/data/camvid", steps=500, seeds=(0, 1)):
    rows = []
    for i, spec in enumerate(specs):
        for seed in seeds:
            row = dict.fromkeys(COLUMNS, "")
            row.update(network=f"net{i}", spec=spec.to_json(indent=None), dataset=dataset, steps=steps, seed=seed,
                       miou=round(30 + 3 * spec_features(spec)[0] + seed * 0.2, 3))
            rows.append(row)
    write_csv(path, COLUMNS, rows)
    return path


def test_fit_from_validate_results(tmp_path, capsys):
    specs = list(dict.fromkeys(SearchSpace.default().sample(i) for i in range(8)))
    results = _results(tmp_path / "results.csv", specs)
    out = tmp_path / "p.json"
    assert main(["predictor", "fit", str(results), "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["networks"] == len(specs)  # two seeds per network count once
    assert load_predictor(out).networks == len(specs)
    before = out.read_text()
    assert main(["predictor", "fit", str(results), "-o", str(out)]) == 2  # never overwritten without --force
    assert "exists" in capsys.readouterr().err and out.read_text() == before


def test_mixed_datasets_need_a_choice(tmp_path, capsys):
    specs = list(dict.fromkeys(SearchSpace.default().sample(i) for i in range(12)))
    a = _results(tmp_path / "a.csv", specs[:6])
    b = _results(tmp_path / "b.csv", specs[6:], dataset="synthetic")
    assert main(["predictor", "fit", str(a), str(b), "-o", str(tmp_path / "p.json")]) == 2
    assert "mix datasets (camvid, synthetic); choose one with --dataset" in capsys.readouterr().err
    assert main(["predictor", "fit", str(a), str(b), "--dataset", "camvid", "-o", str(tmp_path / "p.json")]) == 0
    assert main(["predictor", "fit", str(tmp_path / "none.csv"), "-o", str(tmp_path / "q.json")]) == 2
    assert "no such results file" in capsys.readouterr().err
