"""The README's Markdown: tables have one header row."""

from __future__ import annotations

from pathlib import Path


def test_readme_tables_have_one_header_row() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    lines = readme.splitlines()
    for a, b in zip(lines, lines[1:], strict=False):
        assert not (a.startswith("|") and a == b), a
