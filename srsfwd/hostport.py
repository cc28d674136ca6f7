"""``HOST[:PORT]`` as operators write it: the one parser for every such option and setting."""

from __future__ import annotations

import ipaddress


def parse_host_port(
    text: str, *, default_port: int | None = None, ip_only: bool = False
) -> tuple[str, int]:
    """``host``, ``host:port``, ``[v6]``, ``[v6]:port`` or a bare IPv6 address → (host, port).

    With ``default_port`` None the port must be given (then an unbracketed IPv6 address
    is split at its last colon, as postsrsd writes ``inet:::1:10003``). With ``ip_only``
    the host must be an IP address.

    Raises:
        ValueError: with the reason: no host, no or a bad port, or not an IP address.
    """
    host, port_text = text.strip(), ""
    if host.startswith("["):
        inside, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r}: expected [IPv6] or [IPv6]:PORT")
        host, port_text = inside, rest[1:] if rest else ""
    elif host.count(":") == 1 or (host.count(":") > 1 and default_port is None):
        host, _, port_text = host.rpartition(":")
    if not host:
        raise ValueError(f"{text!r}: no host")
    port = _port(text, port_text, default_port)
    if ip_only:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} is not an IP address") from None
    return host, port


def _port(text: str, port_text: str, default_port: int | None) -> int:
    if not port_text:
        if default_port is None:
            raise ValueError(f"{text!r}: no port")
        return default_port
    if not port_text.isascii() or not port_text.isdigit():
        raise ValueError(f"{text!r}: the port is not a number")
    port = int(port_text)
    if not 0 < port < 65536:
        raise ValueError(f"{text!r}: port {port} is out of range 1..65535")
    return port
