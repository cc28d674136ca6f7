"""The public API: everything srsfwd exports is listed, sorted, and importable."""

from __future__ import annotations
import __future__

import subprocess
import sys
from types import ModuleType

import srsfwd


def test_all_is_sorted_without_duplicates() -> None:
    assert srsfwd.__all__ == sorted(set(srsfwd.__all__))


def test_all_names_exactly_what_the_package_exports() -> None:
    exported = {
        name
        for name, value in vars(srsfwd).items()
        if not name.startswith("_") and not isinstance(value, ModuleType | __future__._Feature)
    }
    assert set(srsfwd.__all__) == exported | {"__version__"}


def test_every_error_is_a_srsfwd_error() -> None:
    errors = [getattr(srsfwd, n) for n in srsfwd.__all__ if n.endswith("Error")]
    assert all(issubclass(error, srsfwd.SrsfwdError) for error in errors)


def test_import_stays_light() -> None:
    code = "import sys, srsfwd; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert not {"click", "dkim", "spf", "dns", "sqlite3", "redis"} & set(loaded)
