"""The process's Prometheus endpoint: one private registry, one HTTP server.

A private `CollectorRegistry` (not prometheus_client's global one) so only what dataprep
registers is exposed, and tests or a host application that also uses prometheus_client never
see duplicate-name errors. Everything the endpoint shows is gathered in this process (the
driver): worker processes and Ray tasks send their counts here through progress ticks and task
results, so no prometheus multiprocess directory is needed.

    from dataprep.observe import metrics
    port = metrics.serve(9100)            # 0: a free port; returns the bound one
    Gauge("dataprep_x", "...", registry=metrics.registry())
"""

from __future__ import annotations

import atexit
import errno
import os
import sys
import threading
import time
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.exposition import generate_latest, start_http_server

from dataprep.errors import DataprepError
from dataprep.observe.drain import Drain

PORT_HELP = (
    "Serve Prometheus metrics on this port while the command runs (0: a free port, printed "
    "on stderr)."
)
DEFAULT_ADDR = "0.0.0.0"  # as prometheus_client and exporters do: the scraper is elsewhere
ADDR_ENV = "DATAPREP_METRICS_ADDR"  # e.g. 127.0.0.1 to serve this host only
# Seconds a finished command keeps serving until its final values are scraped once: a batch
# job's last counts (its rows, a failed stage) would otherwise end with the process unseen.
LINGER_ENV = "DATAPREP_METRICS_LINGER"

_lock = threading.Lock()
_registry: CollectorRegistry | None = None
_server: Any = None  # (WSGIServer, Thread) from start_http_server
_port: int | None = None
_last_scrape = 0.0  # monotonic time the last complete scrape began
_last_change = 0.0  # monotonic time of the last update a scraper must see (see `changed`)
_drain: Drain | None = None  # the endpoint's orderly end at exit (observe.drain)
DRAIN_S = 5.0  # at exit, the most time the answers under way get to be sent


class _Served:
    """The registry as the HTTP server sees it: also notes when it was last scraped."""

    def __init__(self, registry: CollectorRegistry):
        self._registry = registry

    def collect(self) -> Any:
        global _last_scrape
        began = time.monotonic()
        yield from self._registry.collect()
        _last_scrape = began

    def __getattr__(self, name: str) -> Any:  # restricted_registry for ?name[]=... queries
        return getattr(self._registry, name)


def registry() -> CollectorRegistry:
    """The registry the endpoint serves; register collectors on it (`registry=registry()`).
    It also carries the process's CPU/memory (`process_*`) and Python version metrics."""
    global _registry
    with _lock:
        if _registry is None:
            disable_created_metrics()  # no `_created` series beside every counter
            _registry = CollectorRegistry(auto_describe=True)
            ProcessCollector(registry=_registry)
            PlatformCollector(registry=_registry)
        return _registry


def serve(port: int, addr: str | None = None) -> int:
    """Start serving `registry()` at http://addr:port/metrics in a daemon thread and return the
    bound port (`port=0` picks a free one); `addr` defaults to $DATAPREP_METRICS_ADDR, else
    every interface. Serving again returns the running server's port when `port` is 0 or the
    same; another port is an error, since one process has one endpoint. A port in use or not
    allowed is one sentence (DataprepError)."""
    global _server, _port, _drain
    if not 0 <= port <= 65535:
        raise DataprepError(f"--metrics-port {port}: a port is a number from 0 to 65535")
    reg = registry()
    addr = addr or os.environ.get(ADDR_ENV) or DEFAULT_ADDR
    with _lock:
        if _port is not None:
            if port in (0, _port):
                return _port
            raise DataprepError(
                f"--metrics-port {port}: this process already serves metrics on port {_port}"
            )
        try:
            _server = start_http_server(port, addr=addr, registry=_Served(reg))  # type: ignore[arg-type]
        except OSError as exc:
            raise DataprepError(_why_not(port, exc)) from None
        _drain = Drain(_server[0])
        _port = int(_server[0].server_port)
        atexit.register(finish)
        return _port


def changed() -> None:
    """Note that final values were just set (a stage finished): `linger` waits for a scrape
    that began after the latest such note, or after it was called when there was none."""
    global _last_change
    _last_change = time.monotonic()


def linger(seconds: float | None = None) -> None:
    """Keep serving until a scrape has seen the final values (see `changed`), at most
    `seconds` (default: $DATAPREP_METRICS_LINGER, else 0). Ctrl-C ends it."""
    if seconds is None:
        try:
            seconds = float(os.environ.get(LINGER_ENV) or 0)
        except ValueError:
            seconds = 0.0
    if _port is None or seconds <= 0 or (_drain is not None and _drain.closed):
        return
    since = _last_change or time.monotonic()
    try:
        end = time.monotonic() + seconds
        while _last_scrape <= since and time.monotonic() < end:
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass


def finish(seconds: float | None = None) -> None:
    """The endpoint's end, at exit (or before a rank's hard exit): `linger`, then close it so
    that every scrape gets a whole answer or none (see `observe.drain`)."""
    linger(seconds)
    if _drain is not None:
        _drain.close(DRAIN_S)


def bound_port() -> int | None:
    """The port being served, or None."""
    return _port


def announce(port: int, stream: Any = None) -> None:
    """Say on stderr where the metrics are (the only way to learn a port-0 choice)."""
    stream = stream or sys.stderr
    host = _server[0].server_address[0] if _server is not None else DEFAULT_ADDR
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    host = f"[{host}]" if ":" in host else host
    stream.write(f"metrics: http://{host}:{port}/metrics\n")
    stream.flush()


def serve_and_announce(port: int | None) -> int | None:
    """What a command's `--metrics-port` does: nothing when not given, else serve + announce."""
    if port is None:
        return None
    bound = serve(port)
    announce(bound)
    return bound


def scrape() -> str:
    """The exposition text the endpoint would return now (tests, debugging)."""
    return generate_latest(registry()).decode()


def shutdown() -> None:
    """Stop the server (tests; a CLI process just exits). The registry is kept."""
    global _server, _port, _drain
    with _lock:
        if _server is not None:
            httpd, thread = _server
            httpd.shutdown()
            httpd.server_close()
            thread.join(timeout=5)
        _server, _port, _drain = None, None, None


def _why_not(port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"--metrics-port {port}: the port is already in use; choose another port, "
            "or 0 for a free one"
        )
    if exc.errno == errno.EACCES:
        return f"--metrics-port {port}: not allowed to listen there (ports below 1024 need root)"
    return f"--metrics-port {port}: cannot listen ({exc.strerror or exc})"
