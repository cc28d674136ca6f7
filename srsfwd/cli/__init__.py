"""The ``srsfwd`` command line: a thin shell over the library, built with click."""

from __future__ import annotations

from collections.abc import Sequence

import click

from srsfwd import __version__
from srsfwd.cli.common import show_warnings
from srsfwd.cli.decide import decide
from srsfwd.cli.dkim import keygen, keys, seal, sign, verify
from srsfwd.cli.doctor import doctor
from srsfwd.cli.forward import forward
from srsfwd.cli.limits import limits
from srsfwd.cli.serve import serve
from srsfwd.cli.srs import bounce, reverse, rewrite, secret


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="srsfwd")
def cli() -> None:
    """SRS, DKIM/ARC and outbound pool decisions for mail forwarders.

    Settings come from --config (default /etc/srsfwd/srsfwd.toml when present); flags win.

    \b
    Example:
      srsfwd secret new /etc/srsfwd/srs.secret
      srsfwd rewrite --domain fwd.example.net --secret-file /etc/srsfwd/srs.secret alice@example.org
      srsfwd keygen --keys-dir /etc/srsfwd/keys fwd.example.net
      srsfwd forward --config /etc/srsfwd/srsfwd.toml --client-ip 192.0.2.25 \\
          --helo mx.example.org --mail-from alice@example.org --rcpt bob@example.com msg.eml
    """
    show_warnings()


cli.add_command(rewrite)
cli.add_command(reverse)
cli.add_command(secret)
cli.add_command(bounce)
cli.add_command(keygen)
cli.add_command(keys)
cli.add_command(sign)
cli.add_command(verify)
cli.add_command(seal)
cli.add_command(decide)
cli.add_command(doctor)
cli.add_command(limits)
cli.add_command(forward)
cli.add_command(serve)


def main(argv: Sequence[str] | None = None) -> None:
    """Run the command line (``argv`` defaults to ``sys.argv[1:]``)."""
    cli.main(args=list(argv) if argv is not None else None, prog_name="srsfwd")
