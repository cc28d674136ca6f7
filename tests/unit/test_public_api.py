"""The public API: everything srsfwd exports is listed, sorted, and importable."""

from __future__ import annotations

import subprocess
import sys

import srsfwd


def test_all_is_sorted_and_complete() -> None:
    assert sorted(srsfwd.__all__, key=str.lower) == sorted(set(srsfwd.__all__), key=str.lower)
    assert all(hasattr(srsfwd, name) for name in srsfwd.__all__)


def test_every_error_is_a_srsfwd_error() -> None:
    errors = [getattr(srsfwd, n) for n in srsfwd.__all__ if n.endswith("Error")]
    assert all(issubclass(error, srsfwd.SrsfwdError) for error in errors)


def test_import_stays_light() -> None:
    code = "import sys, srsfwd; print(' '.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout.split()
    assert not {"click", "dkim", "spf", "dns", "sqlite3", "redis"} & set(loaded)
