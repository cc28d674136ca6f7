"""Independent DKIM/ARC verifiers run as real peers: dkimpy, Mail::DKIM (Perl), OpenDKIM."""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from unittest import mock

import dkim

from srsfwd.dkim.keys import SigningKey, key_record_text
from tests.dkimhelp import dnsfunc_for

PEERS = Path(__file__).parent / "peers"
_OPENDKIM = shutil.which("opendkim") or "/usr/sbin/opendkim"


def dkimpy_results(message: bytes, keys: Iterable[SigningKey], now: float) -> list[bool]:
    """dkimpy's verdict on each DKIM-Signature, top first."""
    dnsfunc = dnsfunc_for(keys)
    checker = dkim.DKIM(message)
    count = sum(1 for name, _ in checker.headers if name.lower() == b"dkim-signature")
    verdicts = []
    with mock.patch("time.time", return_value=now):
        for index in range(count):
            try:
                verdicts.append(bool(checker.verify(idx=index, dnsfunc=dnsfunc)))
            except dkim.DKIMException:  # DKIM.verify(idx=) raises where dkim.verify says False
                verdicts.append(False)
    return verdicts


def maildkim_results(message: bytes, dns_port: int) -> list[str]:
    """Mail::DKIM's result for each signature ("pass", "fail", "invalid (...)"), asking DNS
    at 127.0.0.1:``dns_port``."""
    run = subprocess.run(
        ["perl", str(PEERS / "dkim_verify.pl"), str(dns_port)],
        input=message,
        capture_output=True,
        timeout=60,
        check=True,
    )
    return [line.split(" ", 1)[0] for line in run.stdout.decode().splitlines()]


@functools.cache
def maildkim_supports_ed25519() -> bool:
    """Mail::DKIM verifies Ed25519 since 1.20230630."""
    run = subprocess.run(
        ["perl", "-MMail::DKIM", "-e", "print $Mail::DKIM::VERSION"],
        capture_output=True,
        timeout=30,
        check=True,
    )
    return float(run.stdout.decode()) >= 1.20230630


def opendkim_results(message: bytes, keys: Iterable[SigningKey], folder: Path) -> list[str]:
    """OpenDKIM's result for each signature (``opendkim -t`` with TestPublicKeys), top first."""
    table = folder / "opendkim-keys"
    table.write_text(
        "".join(f"{k.selector}._domainkey.{k.domain} {key_record_text(k.key)}\n" for k in keys)
    )
    conf = folder / "opendkim.conf"
    conf.write_text(f"TestPublicKeys {table}\nMode v\nSyslog no\nMinimumKeyBits 1024\n")
    path = folder / "message.eml"
    path.write_bytes(message)
    run = subprocess.run(
        [_OPENDKIM, "-x", str(conf), "-vvv", "-t", str(path)],
        capture_output=True,
        timeout=60,
        check=False,
    )
    text = run.stdout.decode() + run.stderr.decode()
    return re.findall(r"\bdkim=(\w+)", text)
