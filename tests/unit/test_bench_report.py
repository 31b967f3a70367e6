"""bench/report.py's writing of docs/benchmarks.md: the sections other suites write after
the marker survive `make bench` rewriting the rest."""

from __future__ import annotations

from pathlib import Path

from bench.report import KEPT_MARKER, Section, write


def test_the_kept_sections_survive_a_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    kept = f"{KEPT_MARKER}\n\n## Priorities and fairness\n\nfigures\n"
    path.write_text(f"# Benchmarks\n\nold run\n\n{kept}")

    write(path, "# Benchmarks", [Section("1. New", "new run")])

    text = path.read_text()
    assert "old run" not in text
    assert "new run" in text
    assert text.endswith(kept)


def test_without_a_marker_the_file_is_the_run_alone(tmp_path: Path) -> None:
    path = tmp_path / "benchmarks.md"
    path.write_text("# Benchmarks\n\nold run\n")

    write(path, "# Benchmarks", [Section("1. New", "new run")])

    assert KEPT_MARKER not in path.read_text()
    assert "old run" not in path.read_text()
