"""The `scim:provider/settings` import: the administrator's settings held in memory, changeable
between requests, as the reference host's MemorySettings (host-harness/src/settings.rs)."""

import hashlib
import time
from dataclasses import dataclass, field
from typing import Optional


def token_digest(token: str) -> bytes:
    """SHA-256 of the token's UTF-8 bytes: what the settings keep instead of the token."""
    return hashlib.sha256(token.encode("utf-8")).digest()


@dataclass
class Token:
    digest: bytes
    # Seconds since the Unix epoch; None for never.
    expires_at: Optional[int] = None


@dataclass
class MemorySettings:
    base_url: str
    tokens: list[Token] = field(default_factory=list)
    enabled: bool = True

    @classmethod
    def with_token(cls, token: str, base_url: str) -> "MemorySettings":
        """Enabled, with one token (kept as its digest) that never expires."""
        return cls(base_url=base_url, tokens=[Token(token_digest(token))])

    def current(self) -> dict:
        """The `scim-settings` record, by the WIT's field names, with the time now."""
        return {
            "enabled": self.enabled,
            "tokens": [{"digest": t.digest, "expires-at": t.expires_at} for t in self.tokens],
            "base-url": self.base_url,
            "now": int(time.time()),
        }
