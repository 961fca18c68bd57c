"""API keys: parsing BRANDLIFT_API_KEYS and constant-time lookup. Keys are never logged."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

SCOPES = frozenset({"ingest", "read", "admin"})


@dataclass(frozen=True)
class Principal:
    """Who made a request: a short fingerprint of the key (safe to log) and its scopes."""

    fingerprint: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


def _digest(raw: str) -> bytes:
    return hashlib.sha256(raw.encode("utf-8")).digest()


def fingerprint(raw: str) -> str:
    """A short, one-way tag for a key: safe to log, enough to tell keys apart."""
    return _digest(raw).hex()[:8]


class KeyRing:
    """The configured keys, stored only as SHA-256 digests."""

    def __init__(self, spec: str):
        self._entries: list[tuple[bytes, Principal]] = []
        for chunk in (part.strip() for part in spec.split(",")):
            if not chunk:
                continue
            raw, sep, scope_text = chunk.rpartition(":")
            # HTTP strips header whitespace, so a padded key could never match.
            raw = raw.strip()
            if not sep or not raw:
                raise ValueError("BRANDLIFT_API_KEYS entries must look like key:scope+scope")
            scopes = frozenset(s.strip() for s in scope_text.split("+") if s.strip())
            unknown = scopes - SCOPES
            if unknown or not scopes:
                raise ValueError(f"unknown API key scope(s): {sorted(unknown) or '(none)'}")
            digest = _digest(raw)
            if any(digest == known for known, _ in self._entries):
                # Two scope sets for one key would make its access depend on list order.
                raise ValueError(f"API key {fingerprint(raw)} is listed more than once")
            self._entries.append((digest, Principal(fingerprint(raw), scopes)))

    def __len__(self) -> int:
        return len(self._entries)

    def authenticate(self, presented: str | None) -> Principal | None:
        """Return the key's principal; every entry is compared so timing reveals nothing."""
        if not presented:
            return None
        candidate = _digest(presented)
        found: Principal | None = None
        for digest, principal in self._entries:
            if hmac.compare_digest(digest, candidate):
                found = principal
        return found
