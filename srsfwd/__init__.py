"""srsfwd: SRS, DKIM/ARC and outbound pool decisions for mail forwarders."""

from __future__ import annotations

import logging

from srsfwd.clock import Clock as Clock
from srsfwd.clock import FrozenClock as FrozenClock
from srsfwd.clock import SystemClock as SystemClock
from srsfwd.errors import AddressError as AddressError
from srsfwd.errors import ConfigError as ConfigError
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

__version__ = "0.1.0"

__all__ = [
    "AddressError",
    "Clock",
    "ConfigError",
    "DKIMError",
    "DNSTempError",
    "DSNError",
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
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
