"""Pages generated at build time (run by the mkdocs-gen-files plugin, see mkdocs.yml).

- ``reference/cli.md``: the command reference, walked from ``evit_nas.main.build_parser()``
  (every subcommand, nested ones included: usage, description, options by group), so it
  follows the command line's flags without being copied by hand.
- ``results/*.md`` and ``claims.md``: the measured figures, rendered by ``gen_results.py``
  from ``benchmarks/results/`` (each number tagged with its source file and key).

Also usable without mkdocs: ``python docs/gen_pages.py OUT_DIR`` writes the same pages.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS))
sys.path.insert(0, str(DOCS.parent))

import gen_results  # noqa: E402  (docs/gen_results.py, beside this file)


def _escape(text: str) -> str:
    """Markdown-safe text for a table cell or paragraph; `code spans` are kept as they are."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # outside code spans
        part = html.escape(parts[i], quote=False)
        parts[i] = re.sub(r"([*_\[\]|])", r"\\\1", part)
    for i in range(1, len(parts), 2):
        parts[i] = parts[i].replace("|", "\\|")
    return "`".join(parts)


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each direct subcommand, in the order `--help` lists them."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help or "" for a in action._choices_actions}
            for name, sub in action.choices.items():
                out.append((name, helps.get(name, ""), sub))
    return out


def _flags(action: argparse.Action) -> str:
    if not action.option_strings:
        return f"`{action.metavar or action.dest}`"
    metavar = ""
    if action.nargs != 0:
        if action.choices is not None and action.metavar is None:
            metavar = "{" + ",".join(map(str, action.choices)) + "}"
        else:
            metavar = action.metavar or action.dest.upper()
        if action.nargs in ("+", "*"):
            metavar = f"{metavar} ..."
    return ", ".join(f"`{opt}{' ' + metavar if metavar else ''}`" for opt in action.option_strings)


def _command_section(path: list[str], parser: argparse.ArgumentParser, summary: str) -> list[str]:
    lines = [f"## `{' '.join(path)}`", ""]
    if summary:
        lines += [_escape(summary[0].upper() + summary[1:]) + ".", ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    if parser.description:
        lines += [_escape(" ".join(parser.description.split())), ""]
    formatter = parser._get_formatter()
    for group in parser._action_groups:
        actions = [a for a in group._group_actions
                   if a.help != argparse.SUPPRESS and not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]
        if not actions:
            continue
        lines += [f"**{_escape(group.title or 'options')}**", ""]
        if group.description:
            lines += [_escape(group.description), ""]
        lines += ["| option | what it does |", "|---|---|"]
        for action in actions:
            text = formatter._expand_help(action) if action.help else ""
            if action.required and action.option_strings:
                text += " (required)"
            lines.append(f"| {_flags(action)} | {_escape(' '.join(text.split()))} |")
        lines.append("")
    if parser.epilog:
        lines += [_escape(parser.epilog), ""]
    return lines


def cli_reference() -> str:
    """The command reference as Markdown, walked from the real parser."""
    from evit_nas.main import build_parser

    root = build_parser()
    lines = ["# Command line reference", "",
             "Generated from the `evit-nas` argument parser (`evit_nas.main.build_parser`) when the "
             "site is built, so it always matches `evit-nas COMMAND --help`.", "",
             "```text", root.format_help().strip(), "```", ""]

    def walk(path: list[str], parser: argparse.ArgumentParser, summary: str) -> None:
        children = _subcommands(parser)
        lines.extend(_command_section(path, parser, summary))
        for name, help_text, sub in children:
            walk(path + [name], sub, help_text)

    for name, help_text, sub in _subcommands(root):
        walk(["evit-nas", name], sub, help_text)
    return "\n".join(lines)


def pages() -> dict[str, str]:
    """Every generated page: path under docs/ -> Markdown."""
    out = {"reference/cli.md": cli_reference()}
    out.update(gen_results.render_pages())
    return out


def _write_with_gen_files() -> None:
    import mkdocs_gen_files

    for path, text in pages().items():
        with mkdocs_gen_files.open(path, "w") as handle:
            handle.write(text)
        mkdocs_gen_files.set_edit_path(path, "gen_pages.py")
    for path, source in gen_results.images().items():
        with mkdocs_gen_files.open(path, "wb") as handle:
            handle.write(source.read_bytes())


if __name__ == "__main__":  # python docs/gen_pages.py OUT_DIR
    target = Path(sys.argv[1])
    for rel, text in pages().items():
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        (target / rel).write_text(text)
elif __name__ == "<run_path>":  # run by the gen-files plugin during `mkdocs build`
    _write_with_gen_files()
