"""vfl: vertical federated learning on tabular data across organizations."""

from vfl.errors import (
    CodecError,
    ConfigError,
    DataError,
    PeerError,
    PeerTimeoutError,
    PolicyError,
    ProtocolError,
    VflError,
)

__version__ = "0.1.0"

__all__ = [
    "CodecError",
    "ConfigError",
    "DataError",
    "PeerError",
    "PeerTimeoutError",
    "PolicyError",
    "ProtocolError",
    "VflError",
    "__version__",
]
