"""One settings model for every process and the client: `ARQGRAPH_*` environment variables, an
optional `.env` file in the working folder, and command-line flags on top (the CLI's defaults
are these settings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
from pydantic_settings import BaseSettings, SettingsConfigDict

from arqgraph.protocol import DEFAULT_QUEUE, MAX_UPDATE_BYTES

ENV_PREFIX = "ARQGRAPH_"


class Settings(BaseSettings):
    """Each field `x` can be set by the variable `ARQGRAPH_X` (or a line of `.env`), and by its
    command-line flag."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=".env", extra="ignore",
                                      frozen=True)

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_password: str = ""  # kept apart from the URL (put in, encoded, by `url`)
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
    history_depth: int = 0  # checkpoints a thread keeps in its history, the newest (0: every one)
    log_jobs: bool = False
    # observability (docs/operations.md): 0 serves no metrics
    metrics_port: int = 0
    log_level: str = "INFO"
    log_format: str = "text"
    dashboard_token: str = ""  # `arqgraph dashboard`'s token (needed beyond localhost)
    ready_timeout: float = 30.0  # seconds a producer waits for an orchestrator to register a graph
    connect_timeout: float = 5.0  # seconds a process waits for an unreachable Redis (0: for ever)
    duty_lease: float = 10.0  # seconds a stopped server's duties wait before another takes them
    serve_gather: float = 0.02  # seconds a busy server holds a submit to send it with others

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """The settings of the environment (and `.env`), or of `env` alone when given; a value
        that does not parse raises a ValueError of one line naming its variable."""
        try:
            if env is None:
                return cls()
            values = {name: env[ENV_PREFIX + name.upper()] for name in cls.model_fields
                      if ENV_PREFIX + name.upper() in env}
            return cls.model_validate(values)
        except pydantic.ValidationError as exc:
            raise ValueError(_one_line(cls, exc)) from None

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


def _one_line(cls: type[Settings], exc: pydantic.ValidationError) -> str:
    error: Any = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "?"
    field = cls.model_fields.get(name)
    kind = getattr(field.annotation, "__name__", "value") if field is not None else "value"
    return (f"environment variable {ENV_PREFIX}{name.upper()}={error['input']!r} is not a valid "
            f"{kind} ({error['msg']})")
