"""The [serve] limits that keep the daemon fair: one per service, per peer, and the
time a new connection has for its first request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from srsfwd.config import config_from_data
from srsfwd.errors import ConfigError
from srsfwd.servers.settings import ServeSettings, serve_settings


def settings(serve: dict[str, Any]) -> ServeSettings:
    return serve_settings(config_from_data({"serve": serve}, Path("/etc/srsfwd/srsfwd.toml")))


def test_each_service_has_its_own_limit_by_default() -> None:
    defaults = settings({})
    assert defaults.connection_limit == 200
    assert defaults.tcp_table_connection_limit == 200
    assert defaults.milter_connection_limit == 200


def test_one_peer_cannot_take_a_whole_service_by_default() -> None:
    defaults = settings({})
    assert defaults.peer_connection_limit < defaults.connection_limit


def test_the_first_request_has_less_time_than_a_kept_connection() -> None:
    defaults = settings({})
    assert defaults.first_request_timeout < defaults.keep_alive


def test_limits_are_read_with_dashes() -> None:
    read = settings(
        {
            "connection-limit": 10,
            "tcp-table-connection-limit": 20,
            "milter-connection-limit": 30,
            "peer-connection-limit": 5,
            "first-request-timeout": 2.5,
        }
    )
    assert (
        read.connection_limit,
        read.tcp_table_connection_limit,
        read.milter_connection_limit,
        read.peer_connection_limit,
        read.first_request_timeout,
    ) == (10, 20, 30, 5, 2.5)


@pytest.mark.parametrize(
    "serve",
    [
        {"tcp-table-connection-limit": 0},
        {"milter-connection-limit": "many"},
        {"peer-connection-limit": True},
        {"peer-connection-limit": 1.5},
        {"first-request-timeout": 0},
        {"first-request-timeout": "10"},
        {"first-request-timeout": float("nan")},
        {"keep-alive": float("inf")},
    ],
)
def test_wrong_limits_are_refused(serve: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=next(iter(serve))):
        settings(serve)


toml_values = st.one_of(
    st.integers(),
    st.floats(allow_nan=True),
    st.booleans(),
    st.text(max_size=10),
    st.lists(st.integers(), max_size=3),
)


@given(
    st.sampled_from(
        [
            "tcp-table-connection-limit",
            "milter-connection-limit",
            "peer-connection-limit",
            "first-request-timeout",
        ]
    ),
    toml_values,
)
@example("first-request-timeout", float("nan"))
@example("first-request-timeout", float("inf"))
def test_any_value_gives_a_usable_limit_or_a_config_error(key: str, value: Any) -> None:
    try:
        read = settings({key: value})
    except ConfigError:
        return
    assert read.tcp_table_connection_limit >= 1
    assert read.milter_connection_limit >= 1
    assert read.peer_connection_limit >= 1
    assert read.first_request_timeout > 0
