"""The code is ruff clean and formatted, and passes mypy --strict (pyproject.toml)."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent


def run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *command], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_finds_nothing() -> None:
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_would_change_nothing() -> None:
    result = run("ruff", "format", "--check", "srsfwd", "tests", "benchmarks", "examples")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_finds_nothing() -> None:
    result = run("mypy")
    assert result.returncode == 0, result.stdout + result.stderr


# What the repository says stands alone: no paths outside it, no tracker numbers.
TEXT_SUFFIXES = {".py", ".md", ".toml", ".sh", ".pl", ".service", ".txt", ".cfg", ""}
ISSUE_NUMBER = re.compile(r"\bissues? #?\d+", re.IGNORECASE)
OUTSIDE_PATH = re.compile(r"(?<![\w.])/(?:work|home|root)/|\bshared[/]docs\b")
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


# Our own test folders (postsrsd has a tests/ folder of its own, cited as such).
TEST_FILE = re.compile(r"\btests/(?:unit|integration|lab)/[a-z0-9_/.-]+\.py\b")  # not X/test_Y.py


def test_every_cited_test_file_is_in_the_repository() -> None:
    cited = {match for _, text in repository_text() for match in TEST_FILE.findall(text)}
    assert cited, "the pattern finds the tests the docs cite"
    assert sorted(name for name in cited if not (ROOT / name).is_file()) == []


# tests/unit mirrors srsfwd/ (docs/architecture.md): tests/unit/X/test_Y.py, or
# test_Y_aspect.py, tests srsfwd/X/Y.py or the package srsfwd/X/Y/. These few test what
# cuts across the modules instead, and say so here:
CROSS_CUTTING_TESTS = {
    "tests/unit/test_public_api.py": "what the package exports (srsfwd/__init__.py)",
    "tests/unit/test_path_arguments.py": "every API that takes a file or folder",
    "tests/unit/cli/test_help.py": "every command's --help",
    "tests/unit/cli/test_json_output.py": "every reporting command's --json",
    "tests/unit/cli/test_error_hints.py": "every command's error hints",
}


def module_under_test(test_file: Path) -> Path | None:
    """The module or package of srsfwd a tests/unit file is named after, if any."""
    relative = test_file.relative_to(ROOT / "tests" / "unit")
    folder = ROOT / "srsfwd" / relative.parent
    words = relative.stem.removeprefix("test_").split("_")
    for end in range(len(words), 0, -1):
        name = "_".join(words[:end])
        for candidate in (folder / f"{name}.py", folder / name / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


def test_every_unit_test_file_names_a_module_of_the_package() -> None:
    test_files = sorted((ROOT / "tests" / "unit").rglob("test_*.py"))
    assert module_under_test(ROOT / "tests" / "unit" / "dns" / "test_spf.py") is not None
    unnamed = [
        path.relative_to(ROOT).as_posix()
        for path in test_files
        if module_under_test(path) is None
        and path.relative_to(ROOT).as_posix() not in CROSS_CUTTING_TESTS
    ]
    assert unnamed == []


def test_the_cross_cutting_tests_exist() -> None:
    assert sorted(name for name in CROSS_CUTTING_TESTS if not (ROOT / name).is_file()) == []


def test_the_architecture_names_every_module_of_the_package() -> None:
    """docs/architecture.md and the tree agree: each module, or a package above it, has a row."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    unnamed = []
    for path in sorted((ROOT / "srsfwd").rglob("*.py")):
        module = path.relative_to(ROOT)
        if module.parent.name != "srsfwd" and module.name == "__init__.py":
            continue  # a package's own row names it
        packages = module.parents[:-2]  # not srsfwd/ itself
        names = [f"`{module.as_posix()}`", *(f"`{folder.as_posix()}/`" for folder in packages)]
        if not any(name in text for name in names):
            unnamed.append(module.as_posix())
    assert unnamed == []


def imported_top_level_modules(*folders: str) -> set[str]:
    names: set[str] = set()
    for folder in folders:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    names |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"__future__", "srsfwd", "tests", "benchmarks"}


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def test_the_test_extra_installs_what_tests_and_benchmarks_import() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {
        requirement_name(r)
        for r in [*project["dependencies"], *project["optional-dependencies"]["test"]]
    }
    distributions = importlib.metadata.packages_distributions()
    needed = {
        module: {name.lower().replace("_", "-") for name in distributions.get(module, [module])}
        for module in imported_top_level_modules("tests", "benchmarks")
    }
    assert sorted(module for module, names in needed.items() if not names & declared) == []
