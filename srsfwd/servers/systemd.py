"""sd_notify(3) by hand: one datagram to $NOTIFY_SOCKET, no libsystemd needed."""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


def sd_notify(state: str) -> bool:
    """Tell systemd ``state`` (``READY=1``, ``RELOADING=1``, ``STOPPING=1``, ...).

    Returns whether a message was sent: False outside systemd or when the socket is
    gone (a notification is advice, never a reason to stop serving).
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # an abstract socket
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
    except OSError as exc:
        log.warning("cannot notify systemd at %s: %s", address.lstrip("\0"), exc)
        return False
    return True
