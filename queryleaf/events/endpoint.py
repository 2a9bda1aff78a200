"""The worker's HTTP endpoint (``queryleaf worker --metrics [HOST:]PORT``): ``/metrics`` in the
Prometheus text format, ``/healthz`` and ``/readyz`` (200 or 503 with a JSON body), on one
small server thread (docs/operations.md)."""

from __future__ import annotations

import json
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from queryleaf.events import health
from queryleaf.events.observe import Monitor

log = logging.getLogger("queryleaf.worker")

DEFAULT_HOST = "127.0.0.1"


def parse_address(
    text: str, default_port: int | None = None, example: int = 9464
) -> tuple[str, int]:
    """``PORT``, ``HOST:PORT`` or ``[IPv6]:PORT`` → (host, port); only a port: 127.0.0.1;
    ``HOST:`` is ``default_port`` when there is one. (Shared by ``worker --metrics`` and
    ``serve --pg``.)"""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = DEFAULT_HOST, text
    host = host.strip("[]") or DEFAULT_HOST
    if not port and default_port is not None:
        return host, default_port
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(
            f"[HOST:]PORT is wanted, e.g. {example} or 0.0.0.0:{example}; got {text!r}"
        )
    return host, int(port)


class Endpoint:
    """Serves a monitor's metrics and probes until ``close``."""

    def __init__(self, monitor: Monitor, host: str, port: int):
        registry = monitor.registry()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server interface
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                elif path in ("/healthz", "/readyz"):
                    probe = health.liveness if path == "/healthz" else health.readiness
                    ok, body = probe(monitor)
                    self._send(200 if ok else 503, "application/json", _json(body))
                else:
                    self._send(404, "text/plain", b"not found: try /metrics, /healthz, /readyz\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # a scrape every few seconds is not worth a log line

        class Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
            daemon_threads = True

        self.server = Server((host, port), Handler)
        self.thread = threading.Thread(
            target=self.server.serve_forever, name="queryleaf-metrics", daemon=True
        )

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def start(self) -> Endpoint:
        self.thread.start()
        host, port = self.address
        log.info("metrics and health probes on http://%s:%d/metrics", host, port)
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def _json(body: dict[str, Any]) -> bytes:
    return (json.dumps(body) + "\n").encode()
