"""A threading HTTP server for fakes whose clients hang up on purpose (cut connections, timeouts):
a reset by the client is the point of such a test, not a traceback on the test run's stderr."""

from __future__ import annotations

import sys
from http.server import ThreadingHTTPServer
from typing import Any


class QuietHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError | TimeoutError):
            return  # the client hung up (or gave up): expected here
        super().handle_error(request, client_address)
