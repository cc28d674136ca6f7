"""The code is ruff clean and passes mypy --strict (configured in pyproject.toml)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


# What the repository says stands alone: no paths outside it, no tracker numbers.
TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".pl", ".service", ".txt", ".cfg", ""}
ISSUE_NUMBER = re.compile(r"\bissues? #?\d+", re.IGNORECASE)
OUTSIDE_PATH = re.compile(r"(?<![\w.])/(?:work|home|root)/|\bshared/docs\b")
DOCS_FILE = re.compile(r"\bdocs/[\w.-]+\.md\b")


def repository_text() -> list[tuple[Path, str]]:
    tops = ["srsfwd", "tests", "benchmarks", "docs", "examples", "keys", ".ci"]
    files = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for top in tops:
        files += [p for p in (ROOT / top).rglob("*") if "__pycache__" not in p.parts]
    here = Path(__file__).resolve()
    return [
        (path, path.read_text(encoding="utf-8"))
        for path in files
        if path.is_file() and path.suffix in TEXT_SUFFIXES and path.resolve() != here
    ]


def offending_lines(pattern: re.Pattern[str]) -> list[str]:
    return [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path, text in repository_text()
        for number, line in enumerate(text.splitlines(), 1)
        if pattern.search(line)
    ]


def test_nothing_cites_an_issue_number() -> None:
    assert offending_lines(ISSUE_NUMBER) == []


def test_nothing_names_a_path_outside_the_repository() -> None:
    assert offending_lines(OUTSIDE_PATH) == []


def test_every_cited_docs_file_is_in_the_repository() -> None:
    cited = {match for _, text in repository_text() for match in DOCS_FILE.findall(text)}
    assert cited, "the pattern finds the docs the README cites"
    assert sorted(name for name in cited if not (ROOT / name).is_file()) == []
