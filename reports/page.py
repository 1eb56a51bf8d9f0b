"""The HTML page: sections of figures and tables, assembled in the report's order.

Tables never run off the page: column names may break after their underscores, and every
table sits in its own box (``div.table-box``) that is at most as wide as the page and
scrolls sideways when a table still cannot fit.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search_space.records import write_atomic

__all__ = ["figure_html", "section_html", "table_html", "write_page"]

STYLE = """body{font-family:sans-serif;max-width:1100px;margin:auto;padding:1em}img{max-width:100%}
.table-box{overflow-x:auto;max-width:100%;margin:.5em 0}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%;text-align:left}
th{vertical-align:bottom}table.meta td{overflow-wrap:anywhere}
figcaption,.note{color:#333;font-size:90%}h2{border-top:1px solid #ddd;padding-top:.6em}
nav li{margin:.1em 0}"""


def _cell(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def table_html(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    """``rows`` as an HTML table of ``columns`` (empty cells for missing values), in its
    scrolling box; a column name may break after an underscore."""
    head = "".join(f"<th>{_cell(c).replace('_', '_<wbr>')}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_cell(r.get(c))}</td>" for c in columns) + "</tr>" for r in rows)
    return f'<div class="table-box"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def section_html(name: str, title: str, body: str) -> str:
    """A ``<section id=name>`` with its heading."""
    return f'<section id="{name}"><h2>{html.escape(title)}</h2>{body}</section>'


def figure_html(name: str, title: str, caption: str, extra: str = "") -> str:
    """A section of the figure ``name.png`` with its caption (HTML), links to its SVG and
    CSV, and ``extra`` HTML after it."""
    return section_html(name, title, f'<figure><img src="{name}.png" alt="{html.escape(title)}"><figcaption>{caption} '
                        f'<a href="{name}.svg">SVG</a> · <a href="{name}.csv">CSV</a></figcaption></figure>{extra}')


def write_page(out_dir: Path, meta: dict[str, Any], parts: Sequence[str], notes: str) -> Path:
    """``out_dir/index.html``: the report's metadata, a list of its sections with links, the
    sections (``parts``, in order) and ``notes`` at the end."""
    info = "".join(f"<tr><th>{html.escape(k)}</th><td>{_cell(v)}</td></tr>" for k, v in meta.items())
    sections = re.findall(r'<section id="([^"]+)"><h2>([^<]*)</h2>', "".join(parts))
    contents = "".join(f'<li><a href="#{name}">{title}</a></li>' for name, title in sections)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>evit-nas report: {_cell(meta.get('study'))}</title>
<style>{STYLE}</style></head>
<body><h1>evit-nas report</h1><div class="table-box"><table class="meta">{info}</table></div>
<nav><ol>{contents}</ol></nav>
{''.join(parts)}
<p class="note">{notes}</p>
</body></html>
"""
    path = out_dir / "index.html"
    write_atomic(path, page)
    return path
