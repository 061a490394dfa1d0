"""An HTTP endpoint's orderly end: every answer is whole, or there is none.

A process that exits while its metrics endpoint answers a scrape cuts the answer off, or
sends an empty 200, which Prometheus stores as every series gone (a refused scrape is only
the target down). So at exit the endpoint closes: a connection accepted from then on is
closed unanswered, a request that arrives on an open connection gets a whole 503, and the
answers under way are waited for. A connection that has not sent its request (a browser's
spare pre-connection, a probe) is not waited for: its reading side is shut, so its handler
ends at once instead of holding the exit.

Patched onto the server instance that `prometheus_client.start_http_server` builds (it
makes its server class inside that function).
"""

from __future__ import annotations

import socket
import threading
from typing import Any

UNAVAILABLE = b"the process is exiting\n"


class Drain:
    """Tracks the connections of one `wsgiref` threading server (see the module)."""

    def __init__(self, httpd: Any) -> None:
        self._lock = threading.Condition()
        self._open: dict[int, Any] = {}  # id -> socket, accepted and not yet closed
        self._asked: set[int] = set()  # of those, the ones whose request reached the app
        self._closed = False
        self._current = threading.local()  # the socket the handler thread serves
        self._process_request = httpd.process_request
        self._shutdown_request = httpd.shutdown_request
        self._process_request_thread = httpd.process_request_thread
        self._app = httpd.get_app()
        httpd.process_request = self._admit
        httpd.shutdown_request = self._done
        httpd.process_request_thread = self._serve
        httpd.set_app(self._answer)

    @property
    def closed(self) -> bool:
        return self._closed

    def reopen(self) -> None:
        with self._lock:
            self._closed = False

    def close(self, timeout: float) -> None:
        """Admit no more, end the connections without a request, wait for the answers."""
        with self._lock:
            self._closed = True
            for key, sock in self._open.items():
                if key not in self._asked:
                    try:
                        sock.shutdown(socket.SHUT_RD)  # its handler reads EOF and ends
                    except OSError:
                        pass
            try:
                self._lock.wait_for(lambda: not self._open, timeout=timeout)
            except KeyboardInterrupt:
                pass

    def _admit(self, request: Any, client_address: Any) -> None:
        with self._lock:
            if self._closed:
                self._shutdown_request(request)
                return
            self._open[id(request)] = request
        self._process_request(request, client_address)

    def _serve(self, request: Any, client_address: Any) -> None:
        self._current.sock = request
        self._process_request_thread(request, client_address)

    def _answer(self, environ: dict[str, Any], start_response: Any) -> Any:
        key = id(getattr(self._current, "sock", None))
        with self._lock:
            self._asked.add(key)
            closed = self._closed
        if closed:  # a whole answer, and this connection is waited for until it is sent
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [UNAVAILABLE]
        return self._app(environ, start_response)

    def _done(self, request: Any) -> None:
        try:
            self._shutdown_request(request)
        finally:
            with self._lock:
                if self._open.pop(id(request), None) is not None:
                    self._asked.discard(id(request))
                    self._lock.notify_all()
