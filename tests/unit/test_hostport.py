"""HOST[:PORT]: the one parser behind --dns-server, --deliver and [serve] endpoints."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from srsfwd.hostport import parse_host_port


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mx.example", ("mx.example", 25)),
        ("127.0.0.1:2525", ("127.0.0.1", 2525)),
        ("[::1]:2525", ("::1", 2525)),
        ("[::1]", ("::1", 25)),
        ("::1", ("::1", 25)),
        (" 192.0.2.1 ", ("192.0.2.1", 25)),
    ],
)
def test_host_port_forms(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text, default_port=25) == expected


@pytest.mark.parametrize(
    "text", ["host:0", "host:99999", ":25", "host:x", "[::1]x", "[::1", "host:٣"]
)
def test_bad_host_port_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"host|port|IPv6"):
        parse_host_port(text, default_port=25)


def test_a_required_port_splits_a_bare_ipv6_address_at_its_last_colon() -> None:
    assert parse_host_port("::1:10003") == ("::1", 10003)


def test_a_required_port_must_be_there() -> None:
    with pytest.raises(ValueError, match="no port"):
        parse_host_port("host.example")


def test_ip_only_refuses_a_name() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        parse_host_port("ns.example:53", default_port=53, ip_only=True)


@given(st.text(max_size=60))
def test_any_text_is_a_value_error_or_an_address(text: str) -> None:
    try:
        host, port = parse_host_port(text, default_port=53, ip_only=True)
    except ValueError:
        return
    ipaddress.ip_address(host)
    assert 0 < port < 65536
