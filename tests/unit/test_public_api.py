"""The public API: everything srsfwd exports is listed, sorted, importable, and covers
every name the README and docs import from it."""

from __future__ import annotations
import __future__

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import srsfwd

ROOT = Path(__file__).parents[2]
FROM_SRSFWD_IMPORT = re.compile(r"^\s*from srsfwd import (\([^)]*\)|[^\n]*)", re.MULTILINE)


def documented_imports() -> dict[str, set[str]]:
    """The names each README/docs file imports with ``from srsfwd import ...``."""
    found: dict[str, set[str]] = {}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in FROM_SRSFWD_IMPORT.finditer(path.read_text(encoding="utf-8")):
            names = match.group(1).split("#")[0].strip("() \n")
            for entry in names.replace("\n", ",").split(","):
                if entry.strip():
                    found.setdefault(entry.split(" as ")[0].strip(), set()).add(path.name)
    return found


def test_all_is_sorted_without_duplicates() -> None:
    assert srsfwd.__all__ == sorted(set(srsfwd.__all__))


def test_all_names_exactly_what_the_package_exports() -> None:
    exported = {
        name
        for name, value in vars(srsfwd).items()
        if not name.startswith("_") and not isinstance(value, ModuleType | __future__._Feature)
    }
    assert set(srsfwd.__all__) == exported | set(srsfwd._LAZY) | {"__version__"}


def test_every_name_in_all_can_be_imported() -> None:
    assert all(getattr(srsfwd, name, None) is not None for name in srsfwd.__all__)


def test_the_main_api_of_the_readme_is_public() -> None:
    assert {"Forwarder", "load_config", "load_secrets"} <= set(srsfwd.__all__)


def test_the_docs_import_from_srsfwd() -> None:
    assert "SRSRewriter" in documented_imports()


def test_every_name_the_docs_import_from_srsfwd_is_in_all() -> None:
    missing = {
        name: files for name, files in documented_imports().items() if name not in srsfwd.__all__
    }
    assert missing == {}


def test_every_error_is_a_srsfwd_error() -> None:
    errors = [getattr(srsfwd, n) for n in srsfwd.__all__ if n.endswith("Error")]
    assert all(issubclass(error, srsfwd.SrsfwdError) for error in errors)


def test_unknown_names_are_attribute_errors() -> None:
    assert getattr(srsfwd, "no_such_name", None) is None


def test_import_stays_light() -> None:
    code = "import sys, srsfwd; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert not {"click", "dkim", "spf", "dns", "sqlite3", "redis"} & set(loaded)
