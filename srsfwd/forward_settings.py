"""The ``[forward]`` table's schema, apart from the heavy pipeline that reads it.

[forward]
dkim_sign = "auto"         # "auto", "srs-domain" or "none"
arc = false                # add an ARC set (needs an RSA key for the SRS domain)
dmarc = "rewrite-from"     # "rewrite-from", "keep" or "reject"
"""

from __future__ import annotations

from typing import Literal, get_args

from srsfwd.config_schema import ConfigTable
from srsfwd.pool import SignWith

#: ``[forward] dmarc``: what to do with a copy that would fail a quarantine or reject policy.
DmarcMode = Literal["rewrite-from", "keep", "reject"]
DMARC_MODES: tuple[DmarcMode, ...] = get_args(DmarcMode)


class ForwardTable(ConfigTable, frozen=True):
    """The schema of the ``[forward]`` table (read by ``Forwarder.from_config``); no
    settings class of its own, so the defaults are here."""

    dkim_sign: SignWith = "auto"
    arc: bool = False
    dmarc: DmarcMode = "rewrite-from"
