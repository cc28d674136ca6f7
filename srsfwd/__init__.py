"""srsfwd: SRS, DKIM/ARC and outbound pool decisions for mail forwarders.

``Forwarder``, ``load_config`` and ``load_secrets`` are imported on first use, so that
``import srsfwd`` stays light (no DKIM, DNS or SPF library until a forwarder is built).
"""

from __future__ import annotations

import importlib
import logging
import typing

from srsfwd.clock import Clock as Clock
from srsfwd.clock import FrozenClock as FrozenClock
from srsfwd.clock import SystemClock as SystemClock
from srsfwd.errors import AddressError as AddressError
from srsfwd.errors import ConfigError as ConfigError
from srsfwd.errors import DeliveryDeferredError as DeliveryDeferredError
from srsfwd.errors import DeliveryError as DeliveryError
from srsfwd.errors import DKIMError as DKIMError
from srsfwd.errors import DNSTempError as DNSTempError
from srsfwd.errors import DSNError as DSNError
from srsfwd.errors import KeyFormatError as KeyFormatError
from srsfwd.errors import KeyNotFoundError as KeyNotFoundError
from srsfwd.errors import ProtocolError as ProtocolError
from srsfwd.errors import SignatureError as SignatureError
from srsfwd.errors import SRSAliasError as SRSAliasError
from srsfwd.errors import SRSError as SRSError
from srsfwd.errors import SRSExpiredError as SRSExpiredError
from srsfwd.errors import SRSFormatError as SRSFormatError
from srsfwd.errors import SrsfwdError as SrsfwdError
from srsfwd.errors import SRSHashError as SRSHashError
from srsfwd.errors import SRSLengthError as SRSLengthError
from srsfwd.errors import StoreError as StoreError
from srsfwd.errors import TemporaryError as TemporaryError
from srsfwd.srs import SRSRewriter as SRSRewriter

if typing.TYPE_CHECKING:
    from srsfwd.config import load_config as load_config
    from srsfwd.forward import Forwarder as Forwarder
    from srsfwd.secretfile import load_secrets as load_secrets

__version__ = "0.1.0"

__all__ = [
    "AddressError",
    "Clock",
    "ConfigError",
    "DKIMError",
    "DNSTempError",
    "DSNError",
    "DeliveryDeferredError",
    "DeliveryError",
    "Forwarder",
    "FrozenClock",
    "KeyFormatError",
    "KeyNotFoundError",
    "ProtocolError",
    "SRSAliasError",
    "SRSError",
    "SRSExpiredError",
    "SRSFormatError",
    "SRSHashError",
    "SRSLengthError",
    "SRSRewriter",
    "SignatureError",
    "SrsfwdError",
    "StoreError",
    "SystemClock",
    "TemporaryError",
    "__version__",
    "load_config",
    "load_secrets",
]

#: The names imported on first use, and the module each comes from.
_LAZY = {
    "Forwarder": "srsfwd.forward",
    "load_config": "srsfwd.config",
    "load_secrets": "srsfwd.secretfile",
}


def __getattr__(name: str) -> object:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


logging.getLogger(__name__).addHandler(logging.NullHandler())
