"""Processes of the mail lab: private Postfix instances and foreground daemons."""

from __future__ import annotations

import ctypes
import grp
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

from tests.integration.postfix import master_services

START_TIMEOUT = 60.0

#: The master.cf service a lab instance needs beyond the test instances' standard ones.
_VIRTUAL = "virtual unix - n n - - virtual"


#: Linux's prctl option that signals a process when the process that started it dies.
_PR_SET_PDEATHSIG = 1


def _end_with_the_tests() -> None:
    """Have the kernel stop this daemon when the test process dies, even by SIGKILL.

    Without it a test run killed from outside leaves the lab's daemons holding their
    fixed ports, and every later lab refuses to start.
    """
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class LabError(RuntimeError):
    """A lab component did not start or did not do what was expected."""


def wait_for_port(host: str, port: int, what: str, timeout: float = START_TIMEOUT) -> None:
    """Poll until ``host:port`` accepts TCP connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise LabError(f"{what} did not start listening on {host}:{port}") from None
            time.sleep(0.1)


def wait_for_daemon(daemon: Daemon, host: str, port: int, timeout: float = START_TIMEOUT) -> None:
    """Poll until ``daemon`` listens on ``host:port``; fail at once if it exits."""
    deadline = time.monotonic() + timeout
    while True:
        daemon.check_running()
        try:
            wait_for_port(host, port, daemon.name, timeout=0.5)
            return
        except LabError:
            if time.monotonic() > deadline:
                raise


@dataclass
class Mailbox:
    """A Maildir that Postfix's virtual delivery agent writes to."""

    path: Path

    def raw_messages(self) -> list[bytes]:
        """Every delivered message as its bytes, oldest first."""
        new = self.path / "new"
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime) if new.exists() else []
        return [f.read_bytes() for f in files]

    def messages(self) -> list[Message]:
        return [message_from_bytes(raw) for raw in self.raw_messages()]


@dataclass
class PostfixInstance:
    """One private Postfix: its own configuration, queue and log directories."""

    name: str
    root: Path
    main: dict[str, str]
    master: list[str]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def etc(self) -> Path:
        return self.root / "etc"

    def log(self) -> str:
        path = self.root / "log" / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def mailbox(self, name: str) -> Mailbox:
        return Mailbox(self.root / "mail" / name)

    def write(self, resolver: str) -> None:
        for name in ("etc", "spool", "lib", "log", "mail"):
            (self.root / name).mkdir(parents=True, exist_ok=True)
        shutil.chown(self.root / "lib", "postfix", "postfix")
        shutil.chown(self.root / "mail", "postfix", "postfix")
        # The chroot jail of smtpd and smtp: the lab resolver, and what libc needs there.
        jail = self.root / "spool" / "etc"
        jail.mkdir(parents=True, exist_ok=True)
        (jail / "resolv.conf").write_text(f"nameserver {resolver}\noptions timeout:2\n")
        (jail / "hosts").write_text("127.0.0.1 localhost\n")
        (jail / "nsswitch.conf").write_text("hosts: files dns\nservices: files\n")
        for name in ("services", "localtime"):
            if Path("/etc", name).exists():
                shutil.copy(Path("/etc", name), jail / name)
        for name, text in self.files.items():
            (self.etc / name).write_text(text)
        settings = {
            "compatibility_level": "3.6",
            "config_directory": str(self.etc),
            "queue_directory": str(self.root / "spool"),
            "data_directory": str(self.root / "lib"),
            "maillog_file": str(self.root / "log" / "maillog"),
            "maillog_file_prefixes": f"/var, /dev/stdout, {self.root}/log",
            "mydestination": "",
            "inet_protocols": "ipv4",
            # Listening addresses are in master.cf (Postfix wants interface addresses here).
            "inet_interfaces": "all",
            "local_transport": "error:local delivery disabled",
            "alias_maps": "",
            "alias_database": "",
            "virtual_mailbox_base": str(self.root / "mail"),
            "virtual_uid_maps": f"static:{pwd.getpwnam('postfix').pw_uid}",
            "virtual_gid_maps": f"static:{grp.getgrnam('postfix').gr_gid}",
            "virtual_minimum_uid": "1",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "smtp_host_lookup": "dns",
            "bounce_queue_lifetime": "0",
            "maximal_queue_lifetime": "1h",
            "minimal_backoff_time": "5s",
            "maximal_backoff_time": "10s",
            "queue_run_delay": "5s",
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "biff": "no",
            **self.main,
        }
        (self.etc / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in settings.items()))
        (self.etc / "master.cf").write_text(
            "".join(s + "\n" for s in master_services([_VIRTUAL, *self.master]))
        )

    def start(self) -> None:
        command = ["postfix", "-c", str(self.etc)]
        check = subprocess.run([*command, "check"], capture_output=True, text=True, timeout=60)
        if check.returncode != 0:
            raise LabError(f"postfix check ({self.name}): {check.stderr}")
        start = subprocess.run([*command, "start"], capture_output=True, text=True, timeout=60)
        if start.returncode != 0:
            raise LabError(f"postfix start ({self.name}): {start.stderr}")

    def stop(self) -> None:
        command = ["postfix", "-c", str(self.etc)]
        subprocess.run([*command, "stop"], capture_output=True, timeout=60, check=False)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = subprocess.run([*command, "status"], capture_output=True, timeout=60)
            if status.returncode != 0:
                return
            time.sleep(0.1)


@dataclass
class Daemon:
    """A foreground process with its output in a log file."""

    name: str
    command: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_end_with_the_tests,
            )

    def check_running(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise LabError(f"{self.name} exited with {self.process.returncode}:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
