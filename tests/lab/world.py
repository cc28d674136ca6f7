"""The mail lab: real DNS, a sending Postfix with OpenDKIM, the forwarder (Postfix and
``srsfwd serve``), a receiving Postfix with rspamd, each on its own loopback address.

Everything runs as the invoking user (root: Postfix and port 53 need it) from private
directories under one temporary root, and is stopped again; no system service is touched.
The machine's resolver stays as it is: Postfix's DNS-using daemons (smtpd, smtp) run
chrooted in their queue directory, whose ``etc/resolv.conf`` names the lab's DNS server.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path

from srsfwd.dkim.keys import generate_key, key_record_text, private_key_pem
from tests.lab import addresses as at
from tests.lab.zones import DKIM_SELECTOR, SENDER_DOMAINS, lab_zones

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
NEEDED = ("postfix", "knotd", "opendkim", "rspamd")
START_TIMEOUT = 60.0
RSPAMD_FIRST_START = 300.0

#: master.cf services every instance needs (smtpd and smtp are added per instance).
_SERVICES = [
    "pickup unix n - n 60 1 pickup",
    "cleanup unix n - n - 0 cleanup",
    "qmgr unix n - n 300 1 qmgr",
    "rewrite unix - - n - - trivial-rewrite",
    "bounce unix - - n - 0 bounce",
    "defer unix - - n - 0 bounce",
    "trace unix - - n - 0 bounce",
    "verify unix - - n - 1 verify",
    "flush unix n - n 1000? 0 flush",
    "proxymap unix - - n - - proxymap",
    "showq unix n - n - - showq",
    "error unix - - n - - error",
    "retry unix - - n - - error",
    "discard unix - - n - - discard",
    "anvil unix - - n - 1 anvil",
    "scache unix - - n - 1 scache",
    "postlog unix-dgram n - n - 1 postlogd",
    "virtual unix - n n - - virtual",
]


def missing_programs() -> list[str]:
    """What the lab lacks: programs not installed, or root (Postfix and port 53 need it)."""
    missing = [name for name in NEEDED if shutil.which(name) is None]
    return missing if os.geteuid() == 0 else [*missing, "root"]


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


class LabError(RuntimeError):
    """A lab component did not start or did not do what was expected."""


@dataclass
class Mailbox:
    """A Maildir that Postfix's virtual delivery agent writes to."""

    path: Path

    def messages(self) -> list[Message]:
        new = self.path / "new"
        files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime) if new.exists() else []
        return [message_from_bytes(f.read_bytes()) for f in files]


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
        (self.etc / "master.cf").write_text("".join(s + "\n" for s in [*_SERVICES, *self.master]))

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
                self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
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


def _knot(root: Path, zones: dict[str, str]) -> Daemon:
    base = root / "knot"
    (base / "zones").mkdir(parents=True)
    for name, text in zones.items():
        (base / "zones" / f"{name}.zone").write_text(text)
    zone_list = "".join(f"  - domain: {name}\n" for name in zones)
    (base / "knot.conf").write_text(
        "server:\n"
        f'    rundir: "{base}"\n'
        f"    listen: {at.DNS}@53\n"
        "    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n"
        f'database:\n    storage: "{base}"\n'
        "log:\n  - target: stderr\n    any: info\n"
        f'template:\n  - id: default\n    storage: "{base}/zones"\n    file: "%s.zone"\n'
        "    journal-content: none\n    zonefile-sync: -1\n"
        f"zone:\n{zone_list}"
    )
    return Daemon("knot", ["knotd", "-c", str(base / "knot.conf")], base / "knot.log")


def _wait_for_dns(zones: dict[str, str], daemon: Daemon) -> None:
    import dns.exception
    import dns.message
    import dns.query
    import dns.rcode

    deadline = time.monotonic() + START_TIMEOUT
    pending = list(zones)
    while pending:
        daemon.check_running()
        query = dns.message.make_query(pending[0], "SOA")
        try:
            answer = dns.query.udp(query, at.DNS, timeout=0.5)
            if answer.rcode() == dns.rcode.NOERROR and answer.answer:
                pending.pop(0)
                continue
        except (OSError, dns.exception.DNSException):
            pass
        if time.monotonic() > deadline:
            raise LabError(f"knot does not serve {pending[0]}:\n{daemon.log()}")
        time.sleep(0.1)


def _opendkim(root: Path, key_pem: bytes) -> Daemon:
    base = root / "opendkim"
    base.mkdir(mode=0o700)
    key = base / "lab.private"
    key.write_bytes(key_pem)
    key.chmod(0o600)
    signed = [d for d, spec in SENDER_DOMAINS.items() if spec["dkim"]]
    (base / "KeyTable").write_text(
        "".join(f"{DKIM_SELECTOR}._domainkey.{d} {d}:{DKIM_SELECTOR}:{key}\n" for d in signed)
    )
    (base / "SigningTable").write_text(
        "".join(f"*@{d} {DKIM_SELECTOR}._domainkey.{d}\n" for d in signed)
    )
    (base / "opendkim.conf").write_text(
        "Syslog no\nMode s\nBackground no\n"
        f"Socket inet:{at.OPENDKIM_PORT}@{at.OPENDKIM}\n"
        f"PidFile {base}/opendkim.pid\n"
        f"KeyTable file:{base}/KeyTable\n"
        f"SigningTable refile:{base}/SigningTable\n"
        "InternalHosts 127.0.0.1\n"
        "Canonicalization relaxed/relaxed\n"
        "OversignHeaders From\n"
        "UserID root\n"
        # Its files sit under /tmp (world-writable): accept them, they are 0600 in a 0700 dir.
        "RequireSafeKeys false\n"
    )
    return Daemon("opendkim", ["opendkim", "-f", "-x", str(base / "opendkim.conf")], base / "log")


def _rspamd_cache(root: Path) -> Path:
    """Where rspamd keeps compiled regular expressions across lab runs (else in ``root``)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cache = base / "srsfwd-lab" / "rspamd-hyperscan"
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError:
        cache = root / "rspamd" / "db"
    return cache


def _rspamd(root: Path) -> Daemon:
    base = root / "rspamd"
    local = base / "local.d"
    local.mkdir(parents=True)
    (base / "db").mkdir()
    check_local = "check_local = true;\ncheck_authed = true;\n"
    settings = {
        # Resolve through the lab; keep compiled Hyperscan databases between runs (the
        # first start compiles the public suffix list for most of a minute).
        "options.inc": f'dns {{ nameserver = ["{at.DNS}:53"]; timeout = 2s; retransmits = 2; }}\n'
        f'hs_cache_dir = "{_rspamd_cache(root)}";\nlocal_addrs = [];\n',
        "spf.conf": check_local,
        "dkim.conf": check_local,
        "dmarc.conf": check_local,
        "arc.conf": check_local + "enabled = true;\n",
        # What the tests read: Authentication-Results and every symbol.
        "milter_headers.conf": 'use = ["authentication-results", "x-spamd-result"];\n'
        "skip_local = false;\nskip_authenticated = false;\nextended_spam_headers = true;\n",
        "actions.conf": "reject = 1000;\nadd_header = 999;\ngreylist = null;\n",
    }
    # Modules that need Redis or the Internet: off in the lab.
    for module in (
        "rbl", "fuzzy_check", "phishing", "asn", "rspamd_update", "ratelimit",
        "greylist", "neural", "reputation", "history_redis", "url_redirector",
        "dkim_signing", "arc_signing", "mx_check", "emails", "surbl",
    ):  # fmt: skip
        settings.setdefault(f"{module}.conf", "enabled = false;\n")
    for name, text in settings.items():
        (local / name).write_text(text)
    (base / "rspamd.conf").write_text(
        '.include "$CONFDIR/common.conf"\n'
        'options {\n  pidfile = "$RUNDIR/rspamd.pid";\n  .include "$CONFDIR/options.inc"\n'
        '  .include(try=true; priority=1,duplicate=merge) "$LOCAL_CONFDIR/local.d/options.inc"\n}\n'
        'logging {\n  type = "console";\n  level = "info";\n}\n'
        'worker "rspamd_proxy" {\n'
        f'  bind_socket = "{at.RSPAMD}:{at.RSPAMD_PORT}";\n'
        "  milter = yes;\n  timeout = 120s;\n  count = 1;\n"
        '  upstream "local" {\n    default = yes;\n'
        f'    hosts = "{at.RSPAMD}:{at.RSPAMD_PORT + 1}";\n  }}\n'
        '  spam_header = "X-Spam";\n}\n'
        # The worker that scans what the proxy hands it.
        f'worker "normal" {{\n  bind_socket = "{at.RSPAMD}:{at.RSPAMD_PORT + 1}";\n'
        '  .include "$CONFDIR/worker-normal.inc"\n  count = 1;\n}\n'
    )
    command = [
        "rspamd", "-f", "-i", "-u", "root", "-g", "root", "-c", str(base / "rspamd.conf"),
        "--var", "CONFDIR=/etc/rspamd", f"--var=LOCAL_CONFDIR={base}",
        f"--var=DBDIR={base}/db", f"--var=RUNDIR={base}", f"--var=LOGDIR={base}",
    ]  # fmt: skip
    return Daemon("rspamd", command, base / "rspamd.log")


def srsfwd_config(root: Path, *, arc: bool, extra_forward: str) -> Path:
    """The forwarder's srsfwd.toml, key store and secret under ``root/srsfwd``."""
    base = root / "srsfwd"
    keys = base / "keys" / at.SRS_DOMAIN
    keys.mkdir(parents=True)
    (base / "keys").chmod(0o700)
    for suffix in ("key", "txt"):
        shutil.copy(EXAMPLES / "keys" / at.SRS_DOMAIN / f"s2026.{suffix}", keys)
    (keys / "s2026.key").chmod(0o600)
    shutil.copy(EXAMPLES / "srs.secret", base / "srs.secret")
    (base / "srs.secret").chmod(0o600)
    (base / "state").mkdir()
    config = base / "srsfwd.toml"
    config.write_text(
        f"""state_dir = "state"

[srs]
domain = "{at.SRS_DOMAIN}"
secrets_file = "srs.secret"
local_domains = ["{at.USERS_DOMAIN}", ".{at.USERS_DOMAIN}"]

[dkim]
keys_dir = "keys"
authserv_id = "{at.SRS_DOMAIN}"

[dkim.domains]
"*.{at.SRS_DOMAIN}" = {{ domain = "{at.SRS_DOMAIN}" }}

[dns]
nameservers = ["{at.DNS}"]
port = 53
timeout = 3.0

[decide]
accepted_domains = ["{at.USERS_DOMAIN}", "*.{at.USERS_DOMAIN}"]
authserv_id = "{at.SRS_DOMAIN}"
# The after-queue hop is ours: SPF is checked for the client of the first outside hop.
trusted_relays = ["{at.FORWARDER_LOOP}"]

[pools.normal]
transport = "smtp"
source_addresses = ["{at.NORMAL_POOL}"]
helo = "mta1.{at.SRS_DOMAIN}"

[pools.relay]
transport = "relay-pool"
source_addresses = ["{at.RELAY_POOL}"]
helo = "rly1.{at.SRS_DOMAIN}"

[pools.high-risk]
transport = "high-risk-pool"
source_addresses = ["{at.HIGH_RISK_POOL}"]
helo = "hr1.{at.SRS_DOMAIN}"

[forward]
dkim_sign = "auto"
arc = {"true" if arc else "false"}
{extra_forward}
[serve]
socketmap = ["inet:{at.SRSFWD}:{at.SOCKETMAP_PORT}"]
milter = ["inet:{at.SRSFWD}:{at.MILTER_PORT}"]
log-level = "debug"
"""
    )
    return config


def _srsfwd(root: Path, *, arc: bool, extra_forward: str) -> tuple[Daemon, Path]:
    config = srsfwd_config(root, arc=arc, extra_forward=extra_forward)
    command = [sys.executable, "-m", "srsfwd", "serve", "--config", str(config)]
    return Daemon("srsfwd", command, config.parent / "srsfwd.log"), config


def _sender_postfix(root: Path) -> PostfixInstance:
    domains = ", ".join(SENDER_DOMAINS)
    mailboxes = "".join(f"alice@{d} {d}/alice/\n" for d in SENDER_DOMAINS)
    milter = f"inet:{at.OPENDKIM}:{at.OPENDKIM_PORT}"
    return PostfixInstance(
        "sender",
        root / "sender",
        main={
            "myhostname": "mx.sender.example",
            "smtp_bind_address": at.SENDER,
            "mynetworks": "127.0.0.1/32",
            "virtual_mailbox_domains": domains,
            "virtual_mailbox_maps": "texthash:$config_directory/mailboxes",
            "smtpd_milters": milter,
            "non_smtpd_milters": milter,
            "milter_default_action": "tempfail",
        },
        master=[
            f"{at.SENDER}:25 inet n - y - - smtpd",
            "smtp unix - - y - - smtp",
        ],
        files={"mailboxes": mailboxes},
    )


#: The forwarder's users: carol has a mailbox; alias forwards outside; team does both.
FORWARDER_ALIASES = (
    f"alias@{at.USERS_DOMAIN} bob@{at.RECEIVER_DOMAIN}\n"
    f"team@{at.USERS_DOMAIN} carol@{at.USERS_DOMAIN}, bob@{at.RECEIVER_DOMAIN}\n"
    f"to-refuser@{at.USERS_DOMAIN} nobody@{at.RECEIVER_DOMAIN}\n"
    f"to-data-refuser@{at.USERS_DOMAIN} data-refuser@{at.RECEIVER_DOMAIN}\n"
    f"to-late-bouncer@{at.USERS_DOMAIN} later@{at.RECEIVER_DOMAIN}\n"
)


def _forwarder_postfix(root: Path) -> PostfixInstance:
    """The set-up docs/postfix.md ("Local copies untouched") describes, on lab addresses."""
    milter = f"inet:{at.SRSFWD}:{at.MILTER_PORT}"
    loop = f"{at.FORWARDER_LOOP}:{at.LOOP_PORT}"
    return PostfixInstance(
        "forwarder",
        root / "forwarder",
        main={
            "myhostname": f"mx.{at.SRS_DOMAIN}",
            "mynetworks": f"{at.FORWARDER_LOOP}/32",
            "virtual_mailbox_domains": at.USERS_DOMAIN,
            "virtual_mailbox_maps": f"inline:{{ carol@{at.USERS_DOMAIN}=carol/ }}",
            "virtual_alias_domains": at.SRS_DOMAIN,
            "virtual_alias_maps": "texthash:$config_directory/virtual",
            # Bounces to our SRS addresses go back to the original sender; forged ones
            # are unknown recipients of the SRS domain, refused at RCPT.
            "recipient_canonical_maps": f"socketmap:inet:{at.SRSFWD}:{at.SOCKETMAP_PORT}:reverse",
            "recipient_canonical_classes": "envelope_recipient",
            # Only mail for outside recipients goes through srsfwd; local mailboxes never.
            "default_transport": f"srsfwd-loop:[{at.FORWARDER_LOOP}]:{at.LOOP_PORT}",
            "milter_default_action": "tempfail",
            "milter_header_checks": "regexp:$config_directory/milter_header_checks",
            "smtp_header_checks": "regexp:$config_directory/smtp_header_checks",
            "header_checks": "regexp:$config_directory/header_checks",
            "smtp_bind_address": at.NORMAL_POOL,
            "smtp_helo_name": f"mta1.{at.SRS_DOMAIN}",
            "disable_mime_output_conversion": "yes",
        },
        master=[
            f"{at.FORWARDER}:25 inet n - y - - smtpd",
            f"{loop} inet n - y - - smtpd -o content_filter=smtp:"
            f" -o receive_override_options=no_address_mappings -o smtpd_milters={milter}"
            f" -o mynetworks={at.FORWARDER_LOOP}/32"
            f" -o smtpd_authorized_xforward_hosts={at.FORWARDER_LOOP}/32",
            f"srsfwd-loop unix - - n - - smtp -o smtp_send_xforward_command=yes"
            f" -o smtp_bind_address={at.FORWARDER_LOOP} -o smtp_helo_name=loop.{at.SRS_DOMAIN}",
            "smtp unix - - y - - smtp",
            f"relay-pool unix - - y - - smtp -o smtp_bind_address={at.RELAY_POOL}"
            f" -o smtp_helo_name=rly1.{at.SRS_DOMAIN}",
            f"high-risk-pool unix - - y - - smtp -o smtp_bind_address={at.HIGH_RISK_POOL}"
            f" -o smtp_helo_name=hr1.{at.SRS_DOMAIN}",
        ],
        files={
            "virtual": FORWARDER_ALIASES,
            "milter_header_checks": (
                "/^X-Srsfwd-Pool:[[:space:]]*relay$/ FILTER relay-pool:\n"
                "/^X-Srsfwd-Pool:[[:space:]]*high-risk$/ FILTER high-risk-pool:\n"
            ),
            "smtp_header_checks": "/^X-Srsfwd-Pool:/ IGNORE\n",
            "header_checks": "/^X-Spam-Flag:/ IGNORE\n",
        },
    )


def _receiver_postfix(root: Path) -> PostfixInstance:
    milter = f"inet:{at.RSPAMD}:{at.RSPAMD_PORT}"
    domain = at.RECEIVER_DOMAIN
    return PostfixInstance(
        "receiver",
        root / "receiver",
        main={
            "myhostname": f"mx.{domain}",
            "smtp_bind_address": at.RECEIVER,
            "mynetworks": "127.0.0.1/32",
            "virtual_mailbox_domains": domain,
            "virtual_mailbox_maps": "texthash:$config_directory/mailboxes",
            "smtpd_milters": milter,
            "milter_default_action": "tempfail",
            "milter_protocol": "6",
            # A mailbox that refuses at DATA; one that accepts and bounces later.
            "smtpd_data_restrictions": "check_recipient_access texthash:$config_directory/data",
            "transport_maps": "texthash:$config_directory/transport",
            "virtual_alias_maps": "texthash:$config_directory/virtual",
        },
        master=[f"{at.RECEIVER}:25 inet n - y - - smtpd", "smtp unix - - y - - smtp"],
        files={
            "mailboxes": "".join(f"{name}@{domain} {name}/\n" for name in ("bob", "data-refuser")),
            "data": f"data-refuser@{domain} REJECT 5.7.1 refused after DATA\n",
            # later@ is accepted at RCPT (an alias), then its target fails: a later bounce.
            "virtual": f"later@{domain} later@gone.{domain}\n",
            "transport": f"gone.{domain} error:5.2.1 mailbox disabled\n",
        },
    )


@contextmanager
def lab_world(root: Path, *, arc: bool = True, extra_forward: str = "") -> Iterator[World]:
    """Build and start the lab under ``root``; stop everything when the block ends.

    ``extra_forward`` is added to srsfwd's ``[forward]`` table (settings a scenario needs).
    """
    missing = missing_programs()
    if missing:
        raise LabError(f"not installed: {', '.join(missing)}")
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o755)
    sender_key = generate_key("rsa-2048")
    forwarder_txt = (EXAMPLES / "keys" / at.SRS_DOMAIN / "s2026.txt").read_text()
    zones = lab_zones(key_record_text(sender_key), {"s2026": _record_text(forwarder_txt)})
    knot = _knot(root, zones)
    opendkim = _opendkim(root, private_key_pem(sender_key))
    rspamd = _rspamd(root)
    srsfwd, config = _srsfwd(root, arc=arc, extra_forward=extra_forward)
    daemons = [knot, opendkim, rspamd, srsfwd]
    postfixes = [_sender_postfix(root), _forwarder_postfix(root), _receiver_postfix(root)]
    sender, forwarder, receiver = postfixes
    world = World(root, sender, forwarder, receiver, daemons=daemons, srsfwd_config=config)
    with ExitStack() as stack:
        try:
            for daemon in daemons:
                stack.callback(daemon.stop)
                daemon.start()
            _wait_for_dns(zones, knot)
            _wait_for_daemon(opendkim, at.OPENDKIM, at.OPENDKIM_PORT)
            _wait_for_daemon(srsfwd, at.SRSFWD, at.MILTER_PORT)
            # A first start compiles the public suffix list: give it minutes on a busy CI.
            _wait_for_daemon(rspamd, at.RSPAMD, at.RSPAMD_PORT, timeout=RSPAMD_FIRST_START)
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


def _wait_for_daemon(daemon: Daemon, host: str, port: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while True:
        daemon.check_running()
        try:
            wait_for_port(host, port, daemon.name, timeout=0.5)
            return
        except LabError:
            if time.monotonic() > deadline:
                raise


def _record_text(zone_text: str) -> str:
    """The TXT record's text from keygen's master-file entry (its quoted strings joined)."""
    return "".join(zone_text.split('"')[1::2])


def remove(root: Path) -> None:
    """Delete a lab's files (after it stopped)."""
    shutil.rmtree(root, ignore_errors=True)
