"""The ``srsfwd`` command line: a thin shell over the library, built with click."""

from __future__ import annotations

from collections.abc import Sequence

import click

from srsfwd import __version__
from srsfwd.cli.common import show_warnings
from srsfwd.cli.group import LazyGroup

#: Every subcommand: where it lives (imported only when run) and its one-line help.
SUBCOMMANDS = {
    "rewrite": (
        "srsfwd.cli.srs:rewrite",
        "Rewrite envelope SENDERs into SRS addresses, one per line.",
    ),
    "reverse": (
        "srsfwd.cli.srs:reverse",
        "Verify SRS ADDRESSes and print the original sender of each.",
    ),
    "secret": ("srsfwd.cli.srs:secret", "Make and rotate SRS secrets files."),
    "bounce": (
        "srsfwd.cli.srs:bounce",
        "Check a bounce sent to one of our SRS addresses: where it goes, what it says.",
    ),
    "keygen": (
        "srsfwd.cli.dkim:keygen",
        "Make a DKIM key for DOMAIN and print the DNS record to publish.",
    ),
    "keys": ("srsfwd.cli.dkim:keys", "List, check and rotate the DKIM keys of the key store."),
    "sign": (
        "srsfwd.cli.dkim:sign",
        "Add DKIM-Signature headers to each MESSAGE (standard input when none).",
    ),
    "verify": (
        "srsfwd.cli.dkim:verify",
        "Check every DKIM signature of MESSAGE (standard input when none).",
    ),
    "seal": (
        "srsfwd.cli.dkim:seal",
        "Add this hop's Authentication-Results and an ARC set to MESSAGE (RFC 8617).",
    ),
    "decide": (
        "srsfwd.cli.decide:decide",
        "Pick the outbound pool and SRS for MESSAGE (standard input when absent).",
    ),
    "doctor": (
        "srsfwd.cli.doctor:doctor",
        "Check what a forwarder needs to be trusted and to get its bounces back.",
    ),
    "limits": (
        "srsfwd.cli.limits:limits",
        "Show and lift the sending limits of senders ([limits] in the configuration).",
    ),
    "forward": (
        "srsfwd.cli.forward:forward",
        "Forward MESSAGE (standard input when absent): pool, envelope, headers, signature.",
    ),
    "config": (
        "srsfwd.cli.config:config",
        "Check the configuration file and show the settings in force.",
    ),
    "serve": (
        "srsfwd.cli.serve:serve",
        "Serve SRS to Postfix: socketmap (postsrsd 2.x), tcp_table (postsrsd 1.x), milter.",
    ),
}


@click.group(
    cls=LazyGroup,
    lazy_subcommands=SUBCOMMANDS,
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, prog_name="srsfwd")
def cli() -> None:
    """SRS, DKIM/ARC and outbound pool decisions for mail forwarders.

    Settings come from --config (default /etc/srsfwd/srsfwd.toml when present); flags win.

    Exit status: 0 done, 1 refused or failed, 75 try again later, 2 usage error,
    130 interrupted.

    \b
    Example:
      srsfwd secret new /etc/srsfwd/srs.secret
      srsfwd rewrite --domain fwd.example.net --secret-file /etc/srsfwd/srs.secret alice@example.org
      srsfwd keygen --keys-dir /etc/srsfwd/keys fwd.example.net
      srsfwd forward --config /etc/srsfwd/srsfwd.toml --client-ip 192.0.2.25 \\
          --helo mx.example.org --mail-from alice@example.org --rcpt bob@example.com msg.eml
    """
    show_warnings()


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="srsfwd")
