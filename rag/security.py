"""API keys for the HTTP API, and the loopback-only rule when none are configured.

`RAG_API_KEYS` and `RAG_ADMIN_KEYS` are comma-separated lists.  With any key
configured, every `/v1` call needs `Authorization: Bearer <key>`, and uploads
and deletes need an admin key (admin keys work for ordinary calls too).  With
no key configured the API is open, so the server refuses to listen beyond the
loopback interface: an unauthenticated upload endpoint must never face a network.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass

USER, ADMIN = "user", "admin"


def _split(raw: str | None) -> frozenset[str]:
    return frozenset(k.strip() for k in (raw or "").split(",") if k.strip())


@dataclass(frozen=True)
class KeyConfig:
    api_keys: frozenset[str] = frozenset()
    admin_keys: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls) -> "KeyConfig":
        return cls(_split(os.environ.get("RAG_API_KEYS")), _split(os.environ.get("RAG_ADMIN_KEYS")))

    @property
    def enabled(self) -> bool:
        return bool(self.api_keys or self.admin_keys)

    def role(self, token: str | None) -> str | None:
        """ADMIN, USER or None (unknown key); constant-time comparisons."""
        if not token:
            return None
        token_b = token.encode()
        # Compare against every key (no early exit) so timing does not reveal which matched.
        is_admin = any([hmac.compare_digest(token_b, k.encode()) for k in self.admin_keys])
        is_user = any([hmac.compare_digest(token_b, k.encode()) for k in self.api_keys])
        return ADMIN if is_admin else USER if is_user else None


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_host(requested: str, keys: KeyConfig) -> tuple[str, str]:
    """The host to listen on, and a start-up message that says why.

    Without keys, a non-loopback address is replaced by 127.0.0.1.
    """
    if keys.enabled:
        admin = "admin keys configured" if keys.admin_keys else "no admin key: uploads and deletes are refused"
        return requested, (f"API keys required on /v1 ({len(keys.api_keys)} user, {len(keys.admin_keys)} admin; "
                           f"{admin}); listening on {requested}")
    if is_loopback(requested):
        return requested, (f"no API keys configured (RAG_API_KEYS / RAG_ADMIN_KEYS): the API is open, so it listens "
                           f"on loopback only ({requested})")
    return "127.0.0.1", (f"no API keys configured (RAG_API_KEYS / RAG_ADMIN_KEYS): refusing to listen on {requested}; "
                         f"listening on loopback only (127.0.0.1). Set keys to serve other hosts.")


# -- which Host headers and Origins the server answers -------------------------------------------------

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")


def allowed_hosts(bound_host: str, extra: str | None = None) -> list[str]:
    """Host header values `rag serve` answers (anything else gets 400: DNS rebinding).

    Loopback names, the bound host, and RAG_ALLOWED_HOSTS (comma-separated, `*.example.com`
    patterns, or `*` for any).  A keyed server bound to a wildcard address (0.0.0.0, ::) is
    reached under names it cannot know, so unless RAG_ALLOWED_HOSTS says otherwise it accepts
    any Host; an open server is always loopback-bound, so it never does.
    """
    raw = os.environ.get("RAG_ALLOWED_HOSTS") if extra is None else extra
    listed = [h.strip().lower() for h in (raw or "").split(",") if h.strip()]
    if not listed and bound_host.strip("[]") in WILDCARD_BINDS:
        return ["*"]
    hosts = list(LOOPBACK_NAMES)
    for h in [bound_host.strip("[]").lower(), *listed]:
        if h and h not in hosts:
            hosts.append(h)
    return hosts


# -- slow clients: read timeouts on uvicorn's HTTP protocol --------------------------------------------

def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    return float(raw) if raw else default


class _ReadTimeouts:
    """Mixin for a uvicorn HTTP protocol: closes a connection whose client stalls mid-request.

    uvicorn times out idle keep-alive connections but not a request in progress: a client that
    sends half a request head (or a body, a byte now and then) holds its connection forever.
    Here the request head must be complete `header_timeout` seconds after the connection opens
    (or after the first byte of a keep-alive connection's next request), and while a request
    body is being received, each piece must follow the last within `body_timeout` seconds.
    """

    header_timeout = 10.0
    body_timeout = 30.0
    max_head_bytes = 64 * 1024

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._read_timer = None
        self._read_timer_kind = None
        self._arm("head", self.header_timeout)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)
        if cycle is None or cycle.response_complete:  # waiting for (the rest of) a request head
            self._head_bytes = getattr(self, "_head_bytes", 0) + len(data)
            if self._head_bytes > self.max_head_bytes:  # h11 has a limit of its own, httptools none
                self._refuse(b"431 Request Header Fields Too Large")
                return
            if self._read_timer_kind != "head":
                self._arm("head", self.header_timeout)  # a deadline from the first byte, not reset
            return
        self._head_bytes = 0
        if cycle.more_body:
            self._arm("body", self.body_timeout)  # idle time between body pieces
        else:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # uvicorn's keep-alive timer covers the wait for the next request
        self._disarm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, kind: str, seconds: float) -> None:
        self._disarm()
        if seconds and seconds > 0:
            self._read_timer = self.loop.call_later(seconds, self._read_timed_out, kind)
            self._read_timer_kind = kind

    def _disarm(self) -> None:
        timer = getattr(self, "_read_timer", None)
        if timer is not None:
            timer.cancel()
        self._read_timer = self._read_timer_kind = None

    def _read_timed_out(self, kind: str) -> None:
        self._read_timer = self._read_timer_kind = None
        if self.transport.is_closing():
            return
        cycle = getattr(self, "cycle", None)
        if kind == "body":
            if cycle is None or cycle.response_complete or not cycle.more_body:
                return
            if self.flow.read_paused:  # the app is not reading yet: the client is not the one stalling
                self._arm("body", self.body_timeout)
                return
        elif cycle is not None and not cycle.response_complete:
            return  # the head arrived meanwhile
        if kind == "head":
            self._refuse(b"408 Request Timeout")
        else:
            self.transport.close()

    def _refuse(self, status: bytes) -> None:
        """Answer a request that never got its head through, and close."""
        self._disarm()
        try:
            self.transport.write(b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
        except Exception:  # pragma: no cover - the socket is already gone
            pass
        self.transport.close()


def guarded_http_protocol(header_timeout: float, body_timeout: float) -> type:
    """uvicorn's HTTP protocol class (httptools when installed, else h11) with `_ReadTimeouts`."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    except ImportError:  # pragma: no cover - httptools is optional
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    return type(f"Guarded{base.__name__}", (_ReadTimeouts, base),
                {"header_timeout": header_timeout, "body_timeout": body_timeout})
