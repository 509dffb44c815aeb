"""How a server behaves: its limits, batching and key, in one frozen object validated once.

The field names are the ``neuraltab serve`` options with dashes (``max_rows`` is ``--max-rows``), so a message about
a field names the option a person typed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["Settings", "API_KEY_VARIABLE", "LOOPBACK_HOSTS"]

API_KEY_VARIABLE = "NEURALTAB_API_KEY"  # the environment variable that --api-key defaults to
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")  # binding elsewhere without a key gets a warning


@dataclass(frozen=True)
class Settings:
    # --- limits: each bad request gets a 4xx, never a 5xx --------------------------------------------------------
    max_body_bytes: int = 10 * 1024 * 1024  # request bodies over this get 413
    max_rows: int = 100_000  # rows in one request; more get 413
    timeout: float = 30.0  # seconds a request may take (queueing included) before it gets 504
    max_concurrency: int = 128  # requests inside the server at once (health probes and /metrics aside); more get 503
    # --- micro-batching: off by default -------------------------------------------------------------------------
    batch_max_rows: int = 0  # rows one prediction may gather from concurrent requests; 0 or 1 = every request alone
    batch_max_wait_ms: float = 0.0  # how long a batch waits for requests already being received; a lone request never waits
    # --- access ---------------------------------------------------------------------------------------------------
    api_key: str | None = None  # when set, every endpoint but the health probes needs "Authorization: Bearer <key>"

    def __post_init__(self) -> None:
        positive = {"max_body_bytes": self.max_body_bytes, "max_rows": self.max_rows, "timeout": self.timeout,
                    "max_concurrency": self.max_concurrency}
        for name, value in positive.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be a number above 0, got {value!r}")
        for name in ("batch_max_rows", "batch_max_wait_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be 0 or more, got {value!r}")
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("--api-key is empty; give a key, or leave it out to serve without one")

    @property
    def batching(self) -> bool:
        return self.batch_max_rows > 1

    def replace(self, **changes: object) -> "Settings":
        return dataclasses.replace(self, **changes)
