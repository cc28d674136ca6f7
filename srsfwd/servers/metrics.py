"""The optional Prometheus endpoint: lookups by map and result, milter decisions, errors."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from srsfwd.errors import ConfigError
from srsfwd.srsmaps import MAPS

if TYPE_CHECKING:
    from srsfwd.servers.settings import Endpoint

#: Lookup latency buckets: a lookup is tens of microseconds; a store may take longer.
_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.1, 1.0)
#: Milter latency buckets: DNS and signing take milliseconds to seconds.
_MILTER_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0, 30.0)


class Metrics:
    """Counters on a private registry, served over HTTP by prometheus-client."""

    def __init__(self) -> None:
        try:
            import prometheus_client as prom  # an optional dependency
        except ImportError:
            raise ConfigError(
                "[serve] metrics needs prometheus-client: pip install 'srsfwd[metrics]'"
            ) from None
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        self.lookups = prom.Counter(
            "srsfwd_lookups",
            "Lookups answered, by map and result.",
            ["map", "result"],
            registry=self.registry,
        )
        self.errors = prom.Counter(
            "srsfwd_errors",
            "Connections closed for breaking the protocol or a limit, and internal errors.",
            ["kind"],
            registry=self.registry,
        )
        self.latency = prom.Histogram(
            "srsfwd_lookup_seconds",
            "Time to answer one lookup.",
            ["map"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.connections = prom.Gauge(
            "srsfwd_connections", "Open client connections.", registry=self.registry
        )
        self.reloads = prom.Counter(
            "srsfwd_reloads", "Reloads, by outcome.", ["result"], registry=self.registry
        )
        self.milter_messages = prom.Counter(
            "srsfwd_milter_messages",
            "Messages the milter decided, by action, pool and first reason.",
            ["action", "pool", "reason"],
            registry=self.registry,
        )
        self.milter_recipients = prom.Counter(
            "srsfwd_milter_recipients",
            "Recipients the milter refused or deferred at RCPT, by action and reason.",
            ["action", "reason"],
            registry=self.registry,
        )
        self.milter_signatures = prom.Counter(
            "srsfwd_milter_signatures",
            "Signatures the milter added, by kind (dkim, arc).",
            ["kind"],
            registry=self.registry,
        )
        self.milter_latency = prom.Histogram(
            "srsfwd_milter_seconds",
            "Time from end of message to the milter's reply.",
            buckets=_MILTER_BUCKETS,
            registry=self.registry,
        )
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self, endpoint: Endpoint) -> None:
        """Serve ``/metrics`` on ``endpoint`` from a background thread."""
        server, thread = self._prom.start_http_server(
            endpoint.port, addr=endpoint.host or "127.0.0.1", registry=self.registry
        )
        self._server, self._thread = server, thread

    def stop(self) -> None:
        """Stop the HTTP server."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def observe(self, map_name: str, result: str, seconds: float) -> None:
        """Count one lookup; map names other than ``forward`` and ``reverse`` (a client
        may send any) share the label ``other``, so they cannot create series."""
        if map_name not in MAPS:
            map_name = "other"
        self.lookups.labels(map_name, result).inc()
        self.latency.labels(map_name).observe(seconds)
