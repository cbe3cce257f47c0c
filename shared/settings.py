"""Settings of the long-running processes: command-line flags, defaulting to ARQGRAPH_* env vars."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from arqgraph.protocol import DEFAULT_QUEUE, MAX_UPDATE_BYTES


@dataclass(frozen=True)
class Settings:
    """Each field `x` can be set by the env var `ARQGRAPH_X` (and by its command-line flag)."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str = ""  # kept apart from the URL (put in by `redis_password_for`)
    redis_password_file: str = ""  # a file holding it (a Docker secret: /run/secrets/...)
    queue: str = DEFAULT_QUEUE
    concurrency: int = 16
    poll_delay: float = 0.5
    job_timeout: float = 300.0
    shutdown_grace: float = 30.0
    lease: float = 5.0
    crash_limit: int = 5
    max_update_bytes: int = MAX_UPDATE_BYTES
    sweep_interval: float = 2.0
    retention: int = 7 * 24 * 3600
    log_jobs: bool = False
    ready_timeout: float = 30.0  # seconds a producer waits for an orchestrator to register a graph

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(f"ARQGRAPH_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(cls, f.name))
            try:
                values[f.name] = _flag(raw) if kind is bool else kind(raw)
            except ValueError:
                raise ValueError(
                    f"environment variable ARQGRAPH_{f.name.upper()}={raw!r} is not a valid "
                    f"{kind.__name__}"
                ) from None
        return cls(**values)


    def password(self) -> str:
        """The Redis password given apart from the URL, if any (the file's wins)."""
        if self.redis_password_file:
            try:
                return Path(self.redis_password_file).read_text().strip()
            except OSError as exc:
                raise ValueError(f"ARQGRAPH_REDIS_PASSWORD_FILE: cannot read "
                                 f"{self.redis_password_file!r}: {exc.strerror}") from None
        return self.redis_password

    def url(self, url: str) -> str:
        """`url` (the --redis flag's, or ARQGRAPH_REDIS_URL) with the password set apart put
        in, percent-encoded."""
        from arqgraph.storage.connection import url_with_password

        return url_with_password(url, self.password())


def _flag(raw: str) -> bool:
    word = raw.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(raw)
