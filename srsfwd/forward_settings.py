"""The schema of the ``[forward]`` table, apart from the heavy pipeline that reads it."""

from __future__ import annotations

from typing import Literal

from srsfwd.config_schema import ConfigTable


class ForwardTable(ConfigTable):
    """The schema of the ``[forward]`` table (read by ``Forwarder.from_config``)."""

    dkim_sign: Literal["auto", "srs-domain", "none"] | None = None
    arc: bool | None = None
    dmarc: Literal["rewrite-from", "keep", "reject"] | None = None
