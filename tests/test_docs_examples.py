"""Every example in README.md and docs/*.md runs as shown: one test per fenced block.

A block's language says what it holds and how it is checked:

- ``console``: ``$ `` command lines, each followed by the output it prints, compared line
  by line (``…`` in a shown line stands for any text); JSON output is compared as JSON,
  keys and all, a shown ``"…"`` standing for any value;
- ``sh``: commands, run in order in one folder, each of which must succeed;
- ``python``: run as a script from the repository's point of view (``>>>`` blocks as
  doctests); ``send`` and ``refuse`` are the reader's own functions;
- ``toml``: a configuration that validates on its own, or a fragment that validates
  merged into examples/srsfwd.toml;
- ``json``: parses;
- ``dns``: records a zone file holds, loaded as one;
- ``postfix-main``, ``postfix-master``, ``postfix-table``: lines of Postfix's main.cf,
  master.cf and a regexp table, read by Postfix's own ``postconf`` and ``postmap``
  (with ``--integration``): known parameters, each value as shown, no warnings;
- ``text``: shown, not run (synopses, output, log lines, Postfix's own files); the
  options of an ``srsfwd`` synopsis must be in that command's ``--help``.

A line ``<!-- not run: why -->`` just before a block leaves it out (the options of its
``srsfwd`` command lines are still checked).

Commands and Python run in a reader's folder with the example configured
(tests/readerfolder.py). The README's "Using it" commands build on each other:
tests/test_readme.py runs them.
"""

from __future__ import annotations

import doctest
import json
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from srsfwd.config import load_config
from srsfwd.dns.resolver import Resolver
from srsfwd.errors import SrsfwdError
from srsfwd.forward import Forwarder
from srsfwd.servers.settings import serve_settings
from tests.readerfolder import ROOT, ReaderFolder

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LANGUAGES = {"console", "sh", "python", "toml", "json", "dns", "text"} | {
    "postfix-main",
    "postfix-master",
    "postfix-table",
}
NOT_RUN = re.compile(r"<!-- not run: (?P<why>[^>]+?) -->")


@dataclass(frozen=True)
class Block:
    """One fenced block of a document."""

    document: Path
    line: int
    language: str
    text: str
    not_run: str | None  # why, when a marker leaves it out

    @property
    def where(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks_of(document: Path) -> Iterator[Block]:
    """The fenced blocks of ``document``, with the marker on the line before each."""
    lines = document.read_text(encoding="utf-8").splitlines()
    number = 0
    while number < len(lines):
        fence = lines[number]
        if fence.startswith("```"):
            end = lines.index("```", number + 1)
            marker = NOT_RUN.search(lines[number - 1]) if number else None
            yield Block(
                document=document,
                line=number + 1,
                language=fence[3:].strip(),
                text="\n".join(lines[number + 1 : end]) + "\n",
                not_run=marker["why"] if marker else None,
            )
            number = end
        number += 1


ALL_BLOCKS = [block for document in DOCUMENTS for block in blocks_of(document)]


def blocks(language: str) -> list[Any]:
    """pytest parameters for the blocks in ``language`` that are run."""
    chosen = [b for b in ALL_BLOCKS if b.language == language and b.not_run is None]
    return [pytest.param(block, id=block.where) for block in chosen]


def commands(text: str) -> list[str]:
    """The command lines of a shell block, continuation lines joined."""
    return [
        line.strip()
        for line in text.replace("\\\n", " ").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]


@dataclass(frozen=True)
class Shown:
    """A ``$ `` command of a console block and the output shown under it."""

    command: str
    output: list[str]


def console_commands(text: str) -> list[Shown]:
    shown: list[Shown] = []
    for line in text.replace("\\\n", " ").splitlines():
        if line.startswith("$ "):
            shown.append(Shown(line[2:].strip(), []))
        elif shown:
            shown[-1].output.append(line)
        else:
            raise AssertionError(f"output before the first $ command: {line!r}")
    return shown


@pytest.fixture
def sandbox(tmp_path: Path) -> ReaderFolder:
    return ReaderFolder(tmp_path)


# -- what every block must be ---------------------------------------------------------


def test_every_block_says_what_it_holds() -> None:
    unknown = [f"{b.where} ```{b.language}" for b in ALL_BLOCKS if b.language not in LANGUAGES]
    assert unknown == []


def test_every_marker_says_why_and_is_rare() -> None:
    left_out = [block for block in ALL_BLOCKS if block.not_run]
    assert all(len(block.not_run or "") > 10 for block in left_out)
    assert len(left_out) * 4 < len(ALL_BLOCKS)


# -- shell --------------------------------------------------------------------------------


@pytest.mark.parametrize("block", blocks("console"))
def test_console_example_prints_what_it_shows(block: Block, sandbox: ReaderFolder) -> None:
    for shown in console_commands(block.text):
        done = sandbox.run(shown.command)
        printed = done.stdout + done.stderr
        assert done.returncode == 0, f"{shown.command}\n{printed}"
        assert_output_matches(shown.output, printed, shown.command)


def assert_output_matches(expected: list[str], printed: str, command: str) -> None:
    if expected and expected[0].startswith(("{", "[")):
        assert_json_matches(json.loads("\n".join(expected)), json.loads(printed), command)
        return
    lines = printed.rstrip("\n").splitlines() if printed.strip() else []
    assert len(lines) == len(expected), f"{command}\n{printed}"
    for want, got in zip(expected, lines, strict=True):
        pattern = ".*".join(re.escape(part) for part in want.rstrip().split("…"))
        assert re.fullmatch(pattern, got.rstrip()), f"{command}\nwant: {want}\ngot:  {got}"


def assert_json_matches(expected: Any, printed: Any, where: str) -> None:
    """The same document, keys and all; a shown ``"…"`` stands for any value."""
    if expected == "…":
        return
    if isinstance(expected, dict) and isinstance(printed, dict):
        assert sorted(printed) == sorted(expected), f"{where}: keys"
        for key, value in expected.items():
            assert_json_matches(value, printed[key], f"{where}: {key}")
    elif isinstance(expected, list) and isinstance(printed, list):
        assert len(printed) == len(expected), f"{where}: items"
        for number, (want, got) in enumerate(zip(expected, printed, strict=True)):
            assert_json_matches(want, got, f"{where}: [{number}]")
    else:
        assert printed == expected, where


@pytest.mark.parametrize("block", blocks("sh"))
def test_shell_example_runs(block: Block, sandbox: ReaderFolder) -> None:
    for command in commands(block.text):
        done = sandbox.run(command)
        assert done.returncode == 0, f"{command}\n{done.stdout}{done.stderr}"


@cache
def help_options(command: tuple[str, ...]) -> dict[str, set[str]]:
    """The options and subcommands ``srsfwd COMMAND --help`` lists."""
    done = subprocess.run(
        [sys.executable, "-m", "srsfwd", *command, "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return {
        "options": set(re.findall(r"(?<![\w-])(-{1,2}[A-Za-z][\w-]*)", done.stdout)),
        "commands": set(re.findall(r"^  ([a-z][a-z-]*)  ", done.stdout, re.MULTILINE)),
    }


def srsfwd_lines() -> list[Any]:
    """Every ``srsfwd`` command line shown anywhere, run or not."""
    found = []
    for block in ALL_BLOCKS:
        lines = (
            [s.command for s in console_commands(block.text)]
            if block.language == "console"
            else commands(block.text)
        )
        found += [
            pytest.param(line, id=f"{block.where}:{line.split()[1]}")
            for line in lines
            if block.language in ("console", "sh", "text")
            and line.startswith("srsfwd ")
            and line.split()[1] in help_options(())["commands"]  # not a line of output
        ]
    return found


@pytest.mark.parametrize("line", srsfwd_lines())
def test_shown_srsfwd_options_exist(line: str) -> None:
    words = shlex.split(line.split(" #", 1)[0].replace("[", " ").replace("]", " "))
    command = words[1:2]
    if len(words) > 2 and words[2] in help_options(tuple(command))["commands"]:
        command = words[1:3]
    options = {w.split("=", 1)[0] for w in words if w.startswith("-") and w != "-"}
    known = help_options(tuple(command))["options"]
    assert options <= known, f"{line}: not in srsfwd {' '.join(command)} --help"


# -- Python ---------------------------------------------------------------------------


@dataclass
class ScriptFunctions:
    """The functions a forwarding script writes itself (README, "Using it")."""

    refused: list[str]
    sent: list[tuple[Any, ...]]

    def send(self, *what: Any) -> bool:
        self.sent.append(what)
        return True

    def refuse(self, reply: str) -> None:
        self.refused.append(reply)


@pytest.mark.parametrize("block", blocks("python"))
def test_python_example_runs(
    block: Block, sandbox: ReaderFolder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(sandbox.work)
    reader = ScriptFunctions([], [])
    names: dict[str, Any] = {"send": reader.send, "refuse": reader.refuse}
    if ">>> " in block.text:
        test = doctest.DocTestParser().get_doctest(block.text, names, block.where, None, 0)
        flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
        runner = doctest.DocTestRunner(optionflags=flags)
        runner.run(test)
        assert runner.summarize(verbose=False).failed == 0
    else:
        exec(compile(block.text, block.where, "exec"), names)  # noqa: S102 - the doc's own code
    assert reader.refused == []


# -- configuration, JSON, DNS -------------------------------------------------------


@pytest.mark.parametrize("block", blocks("toml"))
def test_configuration_example_validates(block: Block, sandbox: ReaderFolder) -> None:
    text = block.text.replace("/etc/", f"{sandbox.etc}/")
    alone = sandbox.work / "alone.toml"
    alone.write_text(text, encoding="utf-8")
    try:
        validate(alone)
    except SrsfwdError:  # a fragment: it goes into the example's configuration
        example = tomllib.loads((sandbox.work / "srsfwd.toml").read_text(encoding="utf-8"))
        merged = sandbox.work / "merged.toml"
        merged.write_text(toml_text(merge(example, tomllib.loads(text))), encoding="utf-8")
        validate(merged)


def validate(path: Path) -> None:
    """Read the configuration at ``path`` with every section's reader, as commands do."""
    config = load_config(path)
    Forwarder.from_config(config)
    serve_settings(config)


def merge(base: Mapping[str, Any], fragment: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``fragment``'s values in place, tables merged key by key."""
    merged = dict(base)
    for key, value in fragment.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def toml_text(data: Mapping[str, Any], table: str = "") -> str:
    """``data`` as TOML: values first, then each sub-table (tomllib cannot write)."""
    values = [
        f"{json.dumps(k)} = {toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)
    ]
    text = (f"[{table}]\n" if table else "") + "".join(f"{line}\n" for line in values)
    for key, value in data.items():
        if isinstance(value, dict):
            text += toml_text(value, f"{table}.{json.dumps(key)}" if table else json.dumps(key))
    return text


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # strings, integers and floats are written alike


@pytest.mark.parametrize("block", blocks("json"))
def test_json_example_parses(block: Block) -> None:
    json.loads(block.text)


@pytest.mark.parametrize("block", blocks("dns"))
def test_dns_example_is_a_zone_that_answers(block: Block) -> None:
    resolver = Resolver.from_zone_text(block.text)
    lookups = {"TXT": resolver.txt, "MX": resolver.mx, "A": resolver.addresses}
    records = re.findall(r"^(\S+)\s+(?:\d+\s+)?(?:IN\s+)?([A-Z]+)\s", block.text, re.MULTILINE)
    assert records, "no records"
    for owner, kind in records:
        if kind in lookups:
            assert lookups[kind](owner), f"{owner} {kind}"


# -- Postfix's files ------------------------------------------------------------------


def postfix(program: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    path = Path("/usr/sbin") / program
    if not path.exists():
        pytest.fail(f"{program} is not installed: run .ci/run, which installs the test peers")
    return subprocess.run(
        [str(path), *arguments], capture_output=True, text=True, timeout=60, check=False
    )


def parameters(text: str) -> dict[str, str]:
    """The ``name = value`` lines of a main.cf fragment."""
    return dict(re.findall(r"^(\w+) = (.*)$", text, re.MULTILINE))


@pytest.mark.integration
@pytest.mark.parametrize("block", blocks("postfix-main"))
def test_main_cf_example_means_what_it_shows(block: Block, tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(block.text)
    (tmp_path / "master.cf").write_text("")
    done = postfix("postconf", "-c", str(tmp_path), "-n")
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    for name, value in parameters(block.text).items():
        read = postfix("postconf", "-c", str(tmp_path), "-h", name).stdout.strip()
        assert read == value and "#" not in read, f"main.cf reads {name} as {read!r}"


@pytest.mark.integration
@pytest.mark.parametrize("block", blocks("postfix-master"))
def test_master_cf_example_is_read_as_shown(block: Block, tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("")
    (tmp_path / "master.cf").write_text(block.text)
    done = postfix("postconf", "-c", str(tmp_path), "-M")
    assert done.returncode == 0 and "warning" not in done.stderr, done.stderr
    services = re.findall(r"^(\S+)\s+(unix|inet|fifo|pass)\s", block.text, re.MULTILINE)
    assert len(done.stdout.splitlines()) == len(services), done.stdout


@pytest.mark.integration
@pytest.mark.parametrize("block", blocks("postfix-table"))
def test_regexp_table_example_is_read_without_warnings(block: Block, tmp_path: Path) -> None:
    table = tmp_path / "table"
    table.write_text(block.text)
    (tmp_path / "main.cf").write_text("")
    query = ("-q", "X-Srsfwd-Pool: relay", f"regexp:{table}")
    done = postfix("postmap", "-c", str(tmp_path), *query)
    assert done.returncode in (0, 1) and done.stderr == "", done.stderr
