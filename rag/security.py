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
