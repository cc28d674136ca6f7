"""The lab's daemons: Knot DNS, the senders' OpenDKIM, the receiver's rspamd, srsfwd serve.

Each gets its configuration under the lab's root and runs in the foreground, its output
in a log file there.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode

from tests.lab import addresses as at
from tests.lab.processes import START_TIMEOUT, Daemon, LabError
from tests.lab.zones import DKIM_SELECTOR, SENDER_DOMAINS

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def knot_daemon(root: Path, zones: dict[str, str]) -> Daemon:
    """Knot DNS on 127.12.0.53:53, authoritative for ``zones`` (master files by name)."""
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


def wait_for_dns(zones: dict[str, str], daemon: Daemon) -> None:
    """Poll until Knot answers the SOA of every zone."""
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


def opendkim_daemon(root: Path, key_pem: bytes) -> Daemon:
    """The senders' OpenDKIM milter, signing for the sender domains that sign."""
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


def rspamd_daemon(root: Path) -> Daemon:
    """rspamd: a milter proxy and a scanning worker, resolving through the lab."""
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


def srsfwd_daemon(root: Path, *, arc: bool, extra_forward: str) -> tuple[Daemon, Path]:
    """``srsfwd serve`` with ``srsfwd_config``; also returns the configuration's path."""
    config = srsfwd_config(root, arc=arc, extra_forward=extra_forward)
    command = [sys.executable, "-m", "srsfwd", "serve", "--config", str(config)]
    return Daemon("srsfwd", command, config.parent / "srsfwd.log"), config
