"""The [serve] table and endpoint syntax."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from srsfwd.config import config_from_data
from srsfwd.errors import ConfigError
from srsfwd.servers.settings import Endpoint, parse_endpoint, serve_settings


@pytest.mark.parametrize(
    ("text", "endpoint"),
    [
        ("unix:/var/spool/postfix/srs", Endpoint(path="/var/spool/postfix/srs")),
        ("local:srs", Endpoint(path="srs")),
        ("inet:127.0.0.1:10003", Endpoint(host="127.0.0.1", port=10003)),
        ("inet4:localhost:10003", Endpoint(host="127.0.0.1", port=10003)),
        ("inet6:localhost:10003", Endpoint(host="::1", port=10003)),
        ("inet:[::1]:10003", Endpoint(host="::1", port=10003)),
        ("127.0.0.2:25", Endpoint(host="127.0.0.2", port=25)),
    ],
)
def test_endpoints_as_postsrsd_writes_them(text: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(text) == endpoint


@pytest.mark.parametrize("text", ["unix:", "inet:host", "inet:host:0", "inet::80", "x:99999"])
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_endpoint(text)


def settings(serve: dict[str, Any], path: Path = Path("/etc/srsfwd/srsfwd.toml")) -> Any:
    return serve_settings(config_from_data({"serve": serve}, path))


def test_defaults_are_postsrsd_2s() -> None:
    found = settings({})
    assert [str(e) for _, e in found.endpoints()] == ["unix:/var/spool/postfix/srs"]
    assert (found.keep_alive, found.connection_limit, found.socket_mode) == (30.0, 200, 0o666)
    assert found.metrics is None


def test_postsrsd_key_names_and_relative_socket_paths() -> None:
    found = settings(
        {
            "socketmap": ["unix:run/srs", "inet:127.0.0.1:10003"],
            "tcp-table-forward": "inet:127.0.0.1:10001",
            "tcp_table_reverse": "inet:127.0.0.1:10002",
            "keep-alive": 5,
            "connection-limit": 50,
            "socket-mode": "0660",
            "socket-group": "postfix",
            "long-addresses": "rewrite",
            "metrics": "127.0.0.1:9580",
        }
    )
    assert found.socketmap[0] == Endpoint(path="/etc/srsfwd/run/srs")
    assert [s for s, _ in found.endpoints()] == [
        "socketmap",
        "socketmap",
        "tcp-forward",
        "tcp-reverse",
    ]
    assert (found.keep_alive, found.connection_limit, found.socket_mode) == (5.0, 50, 0o660)
    assert found.metrics == Endpoint(host="127.0.0.1", port=9580)


@pytest.mark.parametrize(
    "serve",
    [
        {"nonsense": 1},
        {"socketmap": []},
        {"socketmap": 5},
        {"keep-alive": 0},
        {"keep-alive": True},
        {"connection-limit": 0},
        {"socket-mode": "rw"},
        {"socket-mode": 0o1777},
        {"long-addresses": "maybe"},
        {"log": "file"},
        {"metrics": "unix:/x"},
        {"socketmap": ["inet:127.0.0.1:1", "inet:127.0.0.1:1"]},
    ],
)
def test_wrong_values_are_refused(serve: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        settings(serve)


def test_the_shipped_example_configuration_parses() -> None:
    from srsfwd.config import load_config

    example = Path(__file__).parents[3] / "examples" / "srsfwd.toml"
    found = serve_settings(load_config(example))
    assert found.socketmap == (Endpoint(path="/var/spool/postfix/srsfwd/srs"),)
    assert (found.socket_group, found.socket_mode) == ("postfix", 0o660)


def test_milter_settings() -> None:
    found = settings(
        {
            "socketmap": [],
            "milter": ["unix:milter", "inet:127.0.0.1:8891"],
            "milter-default-action": "accept",
            "milter-local-domains": ["example.net"],
            "milter-spam-header": "X-Spam-Flag",
            "milter-timeout": 900,
            "milter-workers": 4,
            "milter-inline": False,
        }
    )
    assert found.milter == (
        Endpoint(path="/etc/srsfwd/milter"),
        Endpoint(host="127.0.0.1", port=8891),
    )
    assert [s for s, _ in found.endpoints()] == ["milter", "milter"]
    assert (found.milter_default_action, found.milter_local_domains) == ("accept", ("example.net",))
    assert (found.milter_spam_header, found.milter_pool_header) == ("X-Spam-Flag", "X-Srsfwd-Pool")
    assert (found.milter_timeout, found.milter_workers) == (900.0, 4)
    assert found.milter_inline is False


def test_the_milter_tries_messages_on_its_event_loop_by_default() -> None:
    assert settings({"socketmap": [], "milter": ["unix:milter"]}).milter_inline is True


@pytest.mark.parametrize(
    "serve",
    [
        {"milter": 8891},
        {"milter-default-action": "discard"},
        {"milter-local-domains": "example.net"},
        {"milter-spam-header": "X Spam"},
        {"milter-pool-header": ""},
        {"milter-timeout": 0},
        {"milter-workers": 0},
        {"milter-inline": "yes"},
    ],
)
def test_wrong_milter_values_are_refused(serve: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        settings(serve)
