"""Webhook targets against a real local HTTP server: only a 2xx from the configured URL
completes an event; a redirect is a failed attempt (never followed); one processing_timeout_ms
bounds connecting and waiting for the answer."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest
from event_helpers import drain, log_rows

from queryleaf.events.webhook import WebhookError, post


class _Endpoint(http.server.BaseHTTPRequestHandler):
    """``/hook`` answers with the server's ``status`` (and a Location to ``/target``); every
    request is recorded as (method, path, body)."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self._record(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.send_response(self.server.status if self.path == "/hook" else 200)
        if self.path == "/hook" and 300 <= self.server.status < 400:
            self.send_header("Location", self.server.target)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self._record(b"")
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _record(self, body: bytes) -> None:
        self.server.requests.append((self.command, self.path, body))

    def log_message(self, *args):
        pass


@pytest.fixture()
def endpoint():
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Endpoint)
    web.requests = []
    web.status = 200
    web.target = f"http://127.0.0.1:{web.server_port}/target"
    threading.Thread(target=web.serve_forever, daemon=True).start()
    yield web
    web.shutdown()
    web.server_close()


def _raw_server(answer):
    """A TCP server on 127.0.0.1 calling ``answer(connection, stop)`` for each connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            held.append(conn)
            threading.Thread(target=answer, args=(conn, stop), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture()
def silent_server():
    """Accepts connections but never answers."""
    yield from _raw_server(lambda conn, stop: None)


@pytest.fixture()
def trickling_server():
    """Answers 200, one byte of its headers every 50 ms (for at most 3 s)."""

    def answer(conn, stop):
        conn.recv(65536)
        for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"a" * 60 + b"\r\n\r\n":
            if stop.wait(0.05):
                return
            try:
                conn.sendall(bytes([byte]))
            except OSError:
                return

    yield from _raw_server(answer)


def _subscribe(ql, url: str, **options) -> None:
    settings = {
        "watch_collections": "'orders'",
        "deliver_to": f"'{url}'",
        "max_retry_attempts": "0",
        **{k: str(v) for k, v in options.items()},
    }
    ql.execute(
        "CREATE EVENT_SUBSCRIPTION hook AS ("
        + ", ".join(f"{k} = {v}" for k, v in settings.items())
        + ")"
    )


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_a_failed_attempt_and_is_not_followed(ql, endpoint, status):
    endpoint.status = status
    _subscribe(ql, f"http://127.0.0.1:{endpoint.server_port}/hook")
    ql.db.orders.insert_one({"_id": 1})
    drain(ql)
    (row,) = log_rows(ql)
    assert row["processing_status"] == "dead_letter"
    assert f"HTTP {status}" in row["last_error"]
    assert f"redirecting to {endpoint.target}" in row["last_error"]
    assert [(method, path) for method, path, _ in endpoint.requests] == [("POST", "/hook")]
    (letter,) = ql.execute("SELECT error FROM DEAD_LETTER_EVENTS()").rows
    assert f"HTTP {status}" in letter["error"] and endpoint.target in letter["error"]


@pytest.mark.parametrize("status", [200, 204])
def test_a_2xx_from_the_url_completes_the_event(ql, endpoint, status):
    endpoint.status = status
    _subscribe(ql, f"http://127.0.0.1:{endpoint.server_port}/hook")
    ql.db.orders.insert_one({"_id": 1})
    drain(ql)
    (row,) = log_rows(ql)
    assert row["processing_status"] == "completed" and row["last_error"] is None
    ((method, path, body),) = endpoint.requests
    assert (method, path) == ("POST", "/hook") and b'"documentKey"' in body


def test_a_server_that_never_answers_times_out_within_processing_timeout_ms(ql, silent_server):
    _subscribe(ql, silent_server, processing_timeout_ms=300)
    ql.db.orders.insert_one({"_id": 1})
    drain(ql)
    (row,) = log_rows(ql)
    assert row["processing_status"] == "dead_letter"
    assert "processing_timeout_ms" in row["last_error"]
    assert 300 <= row["processing_duration_ms"] < 300 + 700


def test_post_itself_gives_up_at_the_deadline(silent_server):
    started = time.monotonic()
    with pytest.raises(WebhookError, match=r"no answer within 250 ms \(processing_timeout_ms\)"):
        post(silent_server, b"{}", {"Content-Type": "application/json"}, 0.25)
    assert 0.25 <= time.monotonic() - started < 0.25 + 0.5


def test_post_gives_up_on_an_answer_trickling_past_the_deadline(trickling_server):
    started = time.monotonic()
    with pytest.raises(WebhookError, match="no answer within 400 ms"):
        post(trickling_server, b"{}", {}, 0.4)
    assert time.monotonic() - started < 0.4 + 0.5


def test_post_reports_the_status_and_location_of_a_redirect(endpoint):
    endpoint.status = 303
    url = f"http://127.0.0.1:{endpoint.server_port}/hook"
    with pytest.raises(WebhookError) as caught:
        post(url, b"{}", {}, 5)
    assert str(caught.value).startswith(
        f"POST {url} returned HTTP 303 redirecting to {endpoint.target}; redirects are not followed"
    )
    assert [path for _, path, _ in endpoint.requests] == ["/hook"]
