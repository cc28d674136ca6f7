"""The real SRS peers, driven from Python: Mail::SRS through perl, postsrsd 1.10 over TCP."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, unquote

import pytest

from tests.ports import free_port

HERE = Path(__file__).parent
POSTSRSD = Path("/usr/sbin/postsrsd")


def need(program: str) -> str:
    """The path of ``program``, failing the test with how to install it when missing."""
    found = shutil.which(program) or (
        str(POSTSRSD) if program == "postsrsd" and POSTSRSD.exists() else None
    )
    if found is None:
        pytest.fail(f"{program} is not installed: run .ci/run, which installs the test peers")
    return found


class MailSRS:
    """One long-running perl process answering forward/reverse with Mail::SRS."""

    def __init__(self) -> None:
        need("perl")
        self._process = subprocess.Popen(
            ["perl", str(HERE / "mailsrs_peer.pl")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def ask(
        self,
        op: str,
        address: str,
        *,
        now: int,
        secrets: Sequence[str],
        separator: str = "=",
        hash_length: int = 4,
        alias: str = "",
    ) -> str:
        """Mail::SRS's answer; raises ``PeerRefused`` with its message when it dies."""
        assert self._process.stdin is not None and self._process.stdout is not None
        request = "\t".join(
            [op, str(now), separator, str(hash_length), ",".join(secrets), address, alias]
        )
        self._process.stdin.write(request + "\n")
        self._process.stdin.flush()
        status, _, answer = self._process.stdout.readline().rstrip("\n").partition("\t")
        if status != "OK":
            raise PeerRefusedError(answer)
        return answer

    def close(self) -> None:
        if self._process.stdin:
            self._process.stdin.close()
        self._process.wait(timeout=10)
        if self._process.stdout:
            self._process.stdout.close()


class PeerRefusedError(Exception):
    """The peer refused the request; the message is its reason."""


@dataclass
class PostSRSd:
    """A running postsrsd 1.x: one tcp_table port to forward, one to reverse."""

    forward_port: int
    reverse_port: int
    pid: int = 0

    def lookup(self, port: int, key: str) -> tuple[int, str]:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(f"get {quote(key, safe='@=+-')}\n".encode())
            reply = conn.makefile("rb").readline().decode().rstrip("\n")
        code, _, text = reply.partition(" ")
        return int(code), unquote(text) if code == "200" else text

    def forward(self, sender: str) -> str:
        code, text = self.lookup(self.forward_port, sender)
        if code != 200:
            raise PeerRefusedError(text)
        return text

    def reverse(self, address: str) -> str:
        code, text = self.lookup(self.reverse_port, address)
        if code != 200:
            raise PeerRefusedError(text)
        return text


def libfaketime() -> str:
    """The path of libfaketime, failing the test with how to install it when missing."""
    usr = Path("/usr")
    found = [
        *usr.glob("lib*/*/faketime/libfaketime.so.1"),
        *usr.glob("lib*/faketime/libfaketime.so.1"),
    ]
    if not found:
        pytest.fail("libfaketime is not installed: run .ci/run, which installs the test peers")
    return str(found[0])


def _unlink_faketime_shm(pid: int) -> None:
    """Remove the semaphore and shared memory libfaketime 0.9.10 made for process ``pid``.

    It names them after the pid and removes them only on a normal exit: not on SIGTERM, nor
    once postsrsd has dropped root's privileges.
    Left behind, they make a later process with the same pid fail at start: the ``faketime``
    wrapper exits with "faketime: sem_open: File exists" (it creates them with O_EXCL).
    """
    for name in (f"sem.faketime_sem_{pid}", f"faketime_shm_{pid}"):
        (Path("/dev/shm") / name).unlink(missing_ok=True)


def _wait_unreaped(process: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """Wait until ``process`` has exited, leaving it a zombie (SIGKILL after ``timeout``)."""
    flags = os.WEXITED | os.WNOWAIT
    deadline = time.monotonic() + timeout
    while os.waitid(os.P_PID, process.pid, flags | os.WNOHANG) is None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            os.waitid(os.P_PID, process.pid, flags)
            return
        time.sleep(0.01)


@contextmanager
def postsrsd(
    tmp: Path,
    *,
    domain: str,
    secrets: Sequence[str],
    now: int,
    separator: str = "=",
    hash_length: int = 4,
) -> Iterator[PostSRSd]:
    """Debian's postsrsd 1.10 on loopback, its clock set by libfaketime to ``now``.

    libfaketime is preloaded directly rather than through the ``faketime`` wrapper: the
    wrapper keeps its clock in POSIX shared memory named after its own pid, and SIGTERM
    (our teardown) kills it before it removes it. The preloaded library names its own after
    postsrsd's pid, which we remove once postsrsd has exited and before its pid is reused.
    """
    binary = need("postsrsd")
    secret_file = tmp / f"postsrsd-{free_port()}.secret"
    secret_file.write_text("".join(s + "\n" for s in secrets))
    secret_file.chmod(0o600)
    peer = PostSRSd(free_port(), free_port())
    stamp = datetime.fromtimestamp(now, UTC).strftime("@%Y-%m-%d %H:%M:%S")
    process = subprocess.Popen(
        [
            binary,
            f"-d{domain}",
            f"-s{secret_file}",
            f"-a{separator}",
            f"-n{hash_length}",
            "-N4",
            "-l127.0.0.1",
            "-4",
            f"-f{peer.forward_port}",
            f"-r{peer.reverse_port}",
            "-t10",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "LD_PRELOAD": libfaketime(), "FAKETIME": stamp},
        # postsrsd 1.x forks a child per connection: its own process group lets the
        # teardown stop them all, not only the parent.
        start_new_session=True,
    )
    peer.pid = process.pid
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", peer.reverse_port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    error = process.stderr.read().decode() if process.stderr else ""
                    pytest.fail(f"postsrsd did not start: {error}")
                time.sleep(0.05)
        yield peer
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        if process.returncode is None:
            _wait_unreaped(process)
            # Exited but not reaped: its pid is not reused while we remove what is named after it.
            _unlink_faketime_shm(process.pid)
        process.wait(timeout=10)
        if process.stderr:
            process.stderr.close()
