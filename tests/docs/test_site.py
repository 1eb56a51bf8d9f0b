"""The documentation site builds in strict mode (a broken link, a missing page or a docstring
mkdocstrings cannot read fails the build), offline, and the README's links resolve."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    # any attempt to fetch something at build time goes to a closed port and fails
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true",
           "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
           "http_proxy": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                          "-d", str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    return out


@pytest.mark.slow
def test_the_site_builds_strict_with_every_page(site):
    for page in ["index.html", "getting-started/profile.html", "getting-started/search.html",
                 "getting-started/report.html", "concepts/latency-tables.html", "results/latency.html",
                 "results/training.html", "claims.html", "reference/cli.html", "reference/api/search_space.html",
                 "report/index.html"]:
        assert (site / page).is_file(), page
    # generated pages carry the generated content
    cli = (site / "reference/cli.html").read_text()
    for command in ["evit-nas profile", "evit-nas search", "evit-nas validate", "evit-nas report",
                    "evit-nas latency predict", "--adapt-from", "--budget-ms"]:
        assert command in cli, command
    assert (site / "results/latency.html").read_text().count('class="src"') > 100
    assert "class ArchSpec" in (site / "reference/api/search_space.html").read_text() or \
        "ArchSpec" in (site / "reference/api/search_space.html").read_text()


@pytest.mark.slow
def test_the_site_asks_for_nothing_external(site):
    for page in site.rglob("*.html"):
        if "report" in page.parts:
            continue
        text = page.read_text()
        assert "fonts.googleapis.com" not in text and "fonts.gstatic.com" not in text, page


@pytest.mark.slow
def test_a_broken_link_fails_the_build(tmp_path):
    """The strict build is what catches broken links: the same configuration plus one
    generated page with a dead link must fail."""
    import yaml

    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    config["docs_dir"] = str(ROOT / "docs")
    broken = tmp_path / "broken.py"
    broken.write_text("import mkdocs_gen_files\n"
                      "with mkdocs_gen_files.open('broken.md', 'w') as f:\n"
                      "    f.write('# Broken\\n\\n[gone](no-such-page.md)\\n')\n")
    for plugin in config["plugins"]:
        if isinstance(plugin, dict) and "gen-files" in plugin:
            plugin["gen-files"]["scripts"] = [str(ROOT / "docs" / "gen_pages.py"), str(broken)]
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            plugin["mkdocstrings"]["handlers"]["python"]["paths"] = [str(ROOT)]
    (tmp_path / "mkdocs.yml").write_text(yaml.safe_dump(config, allow_unicode=True))
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    run = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(tmp_path / "mkdocs.yml"),
                          "-d", str(tmp_path / "site")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode != 0
    assert "no-such-page.md" in run.stdout + run.stderr


def test_the_readme_links_resolve():
    readme = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)\s]+)\)", readme)
    assert targets
    for target in targets:
        if "://" in target:
            continue
        assert (ROOT / target.split("#")[0]).exists(), target


def test_the_readme_is_a_landing_page():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    for command in ("make demo", "make test", "evit-nas profile", "--adapt-from", "evit-nas search",
                    "evit-nas report", "evit-nas validate"):
        assert command in readme, command
