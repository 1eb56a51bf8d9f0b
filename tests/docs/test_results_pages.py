"""The measured figures in the docs and the README cannot drift from benchmarks/results/.

docs/gen_results.py tags every figure it renders with the file and key it came from
(``<span class="src" data-file=... data-key=... data-scale=...>TEXT</span>``). These tests
re-read each tagged value from its file, independently of the generator, check the text
against it, and fail on any number on the generated pages that carries no tag.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "docs"))

import gen_results  # noqa: E402

TAG = re.compile(r'<span class="src" data-file="([^"]*)" data-key="([^"]*)" data-scale="([^"]*)" title="[^"]*">(.*?)</span>')
LIT = re.compile(r'<span class="lit">[^<]*</span>')
#: a number standing on its own ("96", "-1.5", "2,662", "10.1x", "94%"); digits inside names
#: (B0, int8, fp32, top-1, 8Gen1) are not numbers
NUMBER = re.compile(r"(?<![\w.\-−/])[-−+]?\d[\d,]*(?:\.\d+)?(?![\d.]*\w(?<!x))")


def _load(rel: str):
    path = ROOT / rel
    return json.loads(path.read_text()) if path.suffix == ".json" else yaml.safe_load(path.read_text())


def _lookup(data, key):
    for part in key:
        data = data[part]
    return data


def check(markdown: str) -> tuple[int, list[str]]:
    """(figures checked, problems) for a generated page."""
    problems, cache = [], {}
    tags = TAG.findall(markdown)
    for rel, key, scale, text in tags:
        key, text = json.loads(html.unescape(key)), html.unescape(text)
        if rel not in cache:
            cache[rel] = _load(rel)
        try:
            value = _lookup(cache[rel], key)
        except (KeyError, IndexError, TypeError):
            problems.append(f"{rel} {key}: no such key (page shows {text!r})")
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            shown = float(text.replace(",", "").replace("+", ""))
            decimals = len(text.split(".")[1]) if "." in text else 0
            if text.endswith("g") or "e" in text:
                problems.append(f"{rel} {key}: unparsable {text!r}")
            elif abs(shown - value * float(scale)) > 0.5 * 10 ** -decimals + 1e-9 * max(1.0, abs(shown)):
                problems.append(f"{rel} {key}: page shows {text}, the file holds {value} (x {scale})")
        elif text != str(value) and not (key[-1] == "date" and text == str(value)[:10]):
            problems.append(f"{rel} {key}: page shows {text!r}, the file holds {value!r}")
    rest = TAG.sub(" ", markdown)
    rest = LIT.sub(" ", rest)
    rest = re.sub(r"```.*?```", " ", rest, flags=re.S)            # code blocks
    rest = re.sub(r"<code>.*?</code>|`[^`]*`", " ", rest)          # commands, paths, names
    rest = re.sub(r"\]\([^)]*\)", "]", rest)                      # link targets
    rest = re.sub(r"<[^>]+>", " ", rest)                          # markup
    rest = re.sub(r"\b\d+x\d+\b", " ", rest)                      # resolutions (settings, not figures)
    for line in rest.splitlines():
        if line.startswith("|") and set(line) <= set("|-: "):
            continue
        for match in NUMBER.finditer(line):
            problems.append(f"untagged number {match.group()!r} in: {line.strip()[:120]}")
    return len(tags), problems


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return gen_results.render_pages()


def test_every_number_on_the_results_pages_comes_from_a_results_file(pages):
    total = 0
    for page, text in pages.items():
        checked, problems = check(text)
        assert not problems, f"{page}:\n" + "\n".join(problems[:20])
        total += checked
    assert total > 500  # the pages really are made of tagged figures


def test_the_check_catches_an_altered_figure(pages):
    text = pages["results/latency.md"]
    first = next(m for m in TAG.finditer(text) if re.fullmatch(r"[-+]?[\d,]+(\.\d+)?", m.group(4)))
    number = first.group(4)
    altered = text[:first.start(4)] + str(round(float(number.replace(",", "")) + 1, 3)) + text[first.end(4):]
    assert check(text)[1] == []
    assert any("page shows" in p for p in check(altered)[1])


def test_the_check_catches_a_typed_number(pages):
    text = pages["claims.md"] + "\nOn this CPU B1 is 2.2x faster and takes 41 ms (94% of the time).\n"
    problems = check(text)[1]
    assert sorted(p.split("'")[1] for p in problems) == ["2.2", "41", "94"]


def test_the_check_catches_a_wrong_key(pages):
    text = pages["claims.md"].replace('data-key="[&quot;speedups&quot;, 0,', 'data-key="[&quot;speedup&quot;, 0,', 1)
    assert any("no such key" in p for p in check(text)[1])


def test_latency_figures_name_cpu_onnxruntime_and_threads():
    renderer = gen_results.Renderer(tagged=False)
    for section in gen_results.SECTIONS:
        for name in section.files if section.latency else []:
            machine = renderer.src(name).machine(latency=True)
            assert "not recorded" not in machine and "onnxruntime 1." in machine and "thread" in machine, (name, machine)


def test_the_readme_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert gen_results.readme_block(readme) == gen_results.readme_table(), \
        "README.md's results table is stale: run python docs/gen_results.py --readme"
    checked, problems = check(gen_results.readme_table(gen_results.Renderer(tagged=True)))
    assert checked >= 20 and not problems, problems


def test_every_results_file_is_on_a_page_or_listed_as_pending(pages):
    index = pages["results/index.md"]
    rendered = "\n".join(v for k, v in pages.items() if k != "results/index.md")
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        assert f"benchmarks/results/{path.name}" in rendered or f"`benchmarks/results/{path.name}`" in index, path.name
