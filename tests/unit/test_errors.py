"""The one error tree: every exception class srsfwd defines is a SrsfwdError, drawn in
srsfwd/errors.py's docstring."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import srsfwd
from srsfwd import errors
from srsfwd.errors import SrsfwdError


def exception_classes() -> dict[str, type[BaseException]]:
    """Every exception class defined in a module of srsfwd, by its qualified name."""
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(srsfwd.__path__, "srsfwd."):
        if module_info.name == "srsfwd.__main__":
            continue  # running it is its only job
        module = importlib.import_module(module_info.name)
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_the_walk_finds_the_errors_outside_errors_py() -> None:
    assert "srsfwd.cli.group.CommandError" in exception_classes()


#: Signals, not errors: each ends a piece of work for its caller to go on another way.
SIGNALS = {"srsfwd.inline.NotInline"}


def test_every_exception_class_in_srsfwd_is_a_srsfwd_error() -> None:
    outside = [
        name
        for name, cls in exception_classes().items()
        if not issubclass(cls, SrsfwdError) and name not in SIGNALS
    ]
    assert outside == []


def test_a_signal_is_no_exception_that_an_except_exception_would_catch() -> None:
    signals = [cls for name, cls in exception_classes().items() if name in SIGNALS]
    assert len(signals) == len(SIGNALS)
    assert not any(issubclass(cls, Exception) for cls in signals)


def test_the_docstring_tree_draws_every_error() -> None:
    assert errors.__doc__ is not None
    drawn = {
        name
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, BaseException)
    }
    missing = [name for name in sorted(drawn) if name not in errors.__doc__.split()]
    assert missing == []


def test_temporary_errors_say_so() -> None:
    temporary = [
        cls for cls in exception_classes().values() if issubclass(cls, errors.TemporaryError)
    ]
    assert temporary and all(cls.temporary for cls in temporary)
