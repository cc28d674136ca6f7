"""Test options: ``--integration`` runs the tests that start or call real peers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from srsfwd.dkim.keys import DkimKey, generate_key
from tests.dnsserver import ZoneServer
from tests.hypothesis_profiles import PROFILE

settings.load_profile(PROFILE)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--integration",
        action="store_true",
        help="run tests against real peers (postsrsd, Mail::SRS, postfix, redis, ...)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--integration"):
        return
    skip = pytest.mark.skip(reason="needs --integration (real peers)")
    for item in items:
        # The marker, not ``item.keywords``: those hold the tests/integration folder's name too.
        if item.get_closest_marker("integration") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def _dns_server_process() -> Iterator[ZoneServer]:
    server = ZoneServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def dns_server(_dns_server_process: ZoneServer) -> ZoneServer:
    """A real DNS server on 127.0.0.1 (UDP and TCP), empty and answering; tests/dnsserver.py."""
    _dns_server_process.clear()
    return _dns_server_process


@pytest.fixture(scope="session")
def dkim_keys() -> dict[str, DkimKey]:
    """One key of each kind keygen makes (rsa-2048/3072/4096, ed25519), made once."""
    return {spec: generate_key(spec) for spec in ("rsa-2048", "rsa-3072", "rsa-4096", "ed25519")}


EXAMPLES = Path(__file__).parents[1] / "examples"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    """A private copy of examples/, with the modes git does not keep."""
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy)
    for key in copy.glob("*keys/*/*.key"):
        key.chmod(0o600)
    (copy / "srs.secret").chmod(0o600)
    return copy
