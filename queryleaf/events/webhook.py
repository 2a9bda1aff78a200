"""One webhook POST: success is a 2xx answer from the URL itself, within one time budget.

* Redirects are not followed. urllib would follow a 301/302/303 with a bodiless GET (and a
  307/308 with the event to another URL), and the target's 2xx would complete an event that
  the configured endpoint never received. A 3xx is a failed attempt whose error names the
  status and the ``Location``; point ``deliver_to`` at the final URL instead.
* Connecting (with TLS), sending and receiving the answer share one deadline, ``timeout_s``
  from the start of the call. A socket timeout alone bounds each operation, not their sum: a
  server trickling its answer a byte at a time would never time out. Past the deadline the
  connection is shut down, which ends a read in progress.
* Proxies from the environment (``https_proxy`` ...) are used as urllib uses them.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from email.message import Message
from typing import Any

# The least time a socket operation is given once the deadline has passed: it then fails at
# once with a timeout (a zero timeout would make the socket non-blocking instead).
_EXPIRED_S = 0.001


class WebhookError(Exception):
    """The endpoint did not accept the POST (message says how)."""


class _Deadline:
    """Makes a connection's steps share the time budget it was created with."""

    timeout: Any
    sock: Any

    def _start(self) -> None:
        self._deadline = time.monotonic() + self.timeout
        self._expired = False

    def _left(self) -> float:
        return max(self._deadline - time.monotonic(), _EXPIRED_S)

    def connect(self) -> None:
        self.timeout = self._left()  # connecting and sending: socket timeouts suffice
        super().connect()  # type: ignore[misc]

    def getresponse(self) -> http.client.HTTPResponse:
        watchdog = threading.Timer(self._left(), self._expire)
        watchdog.daemon = True  # an abandoned POST must not hold up the process's exit
        watchdog.start()
        try:
            return super().getresponse()  # type: ignore[misc]
        except Exception:
            if self._expired:
                raise TimeoutError("no answer before the deadline") from None
            raise
        finally:
            watchdog.cancel()

    def _expire(self) -> None:
        self._expired = True
        sock = self.sock
        if sock is not None:
            try:
                # The plain socket's shutdown: SSLSocket's would also drop its TLS state,
                # which the reading thread is using.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass  # closed meanwhile


class _HTTPConnection(_Deadline, http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._start()


class _HTTPSConnection(_Deadline, http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._start()


class _HTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPConnection, req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_HTTPSConnection, req, context=self._context)  # type: ignore[attr-defined]


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: Any,
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> None:
        return None  # urllib then raises HTTPError with the 3xx


_OPENER = urllib.request.build_opener(_HTTPHandler, _HTTPSHandler, _NoRedirects)


def post(url: str, body: bytes, headers: Mapping[str, str], timeout_s: float) -> None:
    """POST ``body`` to ``url``; raises WebhookError unless the URL answers 2xx in time."""
    request = urllib.request.Request(url, data=body, method="POST", headers=dict(headers))
    try:
        # urllib returns 2xx responses only: any other status is an HTTPError.
        with _OPENER.open(request, timeout=timeout_s):
            pass
    except urllib.error.HTTPError as exc:
        exc.close()
        raise WebhookError(_refused(url, exc.code, exc.headers)) from None
    except (TimeoutError, urllib.error.URLError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        if isinstance(reason, TimeoutError):
            raise WebhookError(
                f"POST {url}: no answer within {_ms(timeout_s)} ms (processing_timeout_ms)"
            ) from None
        raise


def _refused(url: str, status: int, headers: Message | None) -> str:
    """Why a status other than 2xx failed the attempt (for a 3xx: where it pointed)."""
    message = f"POST {url} returned HTTP {status}"
    if 300 <= status < 400:
        location = headers.get("Location") if headers is not None else None
        message += f" redirecting to {location}" if location else " (a redirect without Location)"
        message += "; redirects are not followed: set deliver_to to the URL that accepts the POST"
    return message


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
