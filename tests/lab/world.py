"""The mail lab: real DNS, a sending Postfix with OpenDKIM, the forwarder (Postfix and
``srsfwd serve``), a receiving Postfix with rspamd, each on its own loopback address.

Everything runs as the invoking user (root: Postfix and port 53 need it) from private
directories under one temporary root, and is stopped again; no system service is touched.
The machine's resolver stays as it is: Postfix's DNS-using daemons (smtpd, smtp) run
chrooted in their queue directory, whose ``etc/resolv.conf`` names the lab's DNS server.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from srsfwd.dkim.keys import generate_key, key_record_text, private_key_pem
from tests.lab import addresses as at
from tests.lab.daemons import (
    EXAMPLES,
    knot_daemon,
    opendkim_daemon,
    rspamd_daemon,
    srsfwd_config,
    srsfwd_daemon,
    wait_for_dns,
)
from tests.lab.postfixes import forwarder_postfix, receiver_postfix, sender_postfix
from tests.lab.processes import (
    Daemon,
    LabError,
    Mailbox,
    PostfixInstance,
    wait_for_daemon,
    wait_for_port,
)
from tests.lab.zones import lab_zones

NEEDED = ("postfix", "knotd", "opendkim", "rspamd")
#: A first rspamd start compiles the public suffix list: minutes on a busy CI machine.
RSPAMD_FIRST_START = 300.0

__all__ = [
    "LabError",
    "Mailbox",
    "World",
    "lab_world",
    "missing_programs",
    "remove",
    "srsfwd_config",
]


#: Where the lab's servers listen; none may be taken when a lab starts.
LISTENERS = [
    (at.DNS, 53),
    (at.SENDER, 25),
    (at.OPENDKIM, at.OPENDKIM_PORT),
    (at.FORWARDER, 25),
    (at.FORWARDER_LOOP, at.LOOP_PORT),
    (at.SRSFWD, at.MILTER_PORT),
    (at.SRSFWD, at.SOCKETMAP_PORT),
    (at.RECEIVER, 25),
    (at.RSPAMD, at.RSPAMD_PORT),
]


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def missing_programs() -> list[str]:
    """What the lab lacks: programs not installed, or root (Postfix and port 53 need it)."""
    missing = [name for name in NEEDED if shutil.which(name) is None]
    return missing if os.geteuid() == 0 else [*missing, "root"]


@dataclass
class World:
    """The running lab; ``logs`` gathers every component's log for a failure report."""

    root: Path
    sender: PostfixInstance
    forwarder: PostfixInstance
    receiver: PostfixInstance
    daemons: list[Daemon]
    srsfwd_config: Path

    def logs(self, tail: int = 4000) -> str:
        parts = [
            (p.name + " postfix", p.log()) for p in (self.sender, self.forwarder, self.receiver)
        ]
        parts += [(d.name, d.log()) for d in self.daemons]
        return "\n".join(f"===== {name} =====\n{text[-tail:]}" for name, text in parts)


@contextmanager
def lab_world(root: Path, *, arc: bool = True, extra_forward: str = "") -> Iterator[World]:
    """Build and start the lab under ``root``; stop everything when the block ends.

    ``extra_forward`` is added to srsfwd's ``[forward]`` table (settings a scenario needs).
    """
    missing = missing_programs()
    if missing:
        raise LabError(f"not installed: {', '.join(missing)}")
    busy = [f"{host}:{port}" for host, port in LISTENERS if _listening(host, port)]
    if busy:
        raise LabError(f"{', '.join(busy)} already in use: is another lab running?")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    sender_key = generate_key("rsa-2048")
    forwarder_txt = (EXAMPLES / "keys" / at.SRS_DOMAIN / "s2026.txt").read_text()
    zones = lab_zones(key_record_text(sender_key), {"s2026": _record_text(forwarder_txt)})
    knot = knot_daemon(root, zones)
    opendkim = opendkim_daemon(root, private_key_pem(sender_key))
    rspamd = rspamd_daemon(root)
    srsfwd, config = srsfwd_daemon(root, arc=arc, extra_forward=extra_forward)
    daemons = [knot, opendkim, rspamd, srsfwd]
    postfixes = [sender_postfix(root), forwarder_postfix(root), receiver_postfix(root)]
    sender, forwarder, receiver = postfixes
    world = World(root, sender, forwarder, receiver, daemons=daemons, srsfwd_config=config)
    with ExitStack() as stack:
        try:
            for daemon in daemons:
                stack.callback(daemon.stop)
                daemon.start()
            wait_for_dns(zones, knot)
            wait_for_daemon(opendkim, at.OPENDKIM, at.OPENDKIM_PORT)
            wait_for_daemon(srsfwd, at.SRSFWD, at.MILTER_PORT)
            # A first start compiles the public suffix list: give it minutes on a busy CI.
            wait_for_daemon(rspamd, at.RSPAMD, at.RSPAMD_PORT, timeout=RSPAMD_FIRST_START)
            for postfix in postfixes:
                postfix.write(at.DNS)
                stack.callback(postfix.stop)
                postfix.start()
            for host, port, what in (
                (at.SENDER, 25, "sender postfix"),
                (at.FORWARDER, 25, "forwarder postfix"),
                (at.FORWARDER_LOOP, at.LOOP_PORT, "forwarder loop smtpd"),
                (at.RECEIVER, 25, "receiver postfix"),
            ):
                wait_for_port(host, port, what)
        except LabError as exc:
            raise LabError(f"{exc}\n{world.logs()}") from None
        yield world


def _record_text(zone_text: str) -> str:
    """The TXT record's text from keygen's master-file entry (its quoted strings joined)."""
    return "".join(zone_text.split('"')[1::2])


def remove(root: Path) -> None:
    """Delete a lab's files (after it stopped)."""
    shutil.rmtree(root, ignore_errors=True)
