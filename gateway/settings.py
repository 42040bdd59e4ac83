"""Every setting, from ``SLUICEGATE_*`` variables, a ``.env`` file and CLI flags.

Nothing else in the project reads ``os.environ``: ``Settings`` is built once in ``cli``
and passed down, so tests build their own with ``Settings(_env_file=None, ...)``.
Every setting has a safe default; secrets are ``SecretStr`` so they never print.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gateway.policy import DEFAULT_POLICY

DEMO_UPSTREAM = "demo"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SLUICEGATE_", env_file=".env", extra="ignore", frozen=True
    )

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    workers: Annotated[int, Field(ge=1)] | Literal["auto"] = Field(
        1, description="Processes serving the port (SO_REUSEPORT); 'auto' = the usable CPUs."
    )
    drain_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long requests in flight may take to finish."
    )
    upstream_url: str = Field(
        "https://api.openai.com/v1", description="Upstream base URL with /v1, or 'demo'."
    )
    upstream_api_key: SecretStr | None = None
    api_keys: Annotated[tuple[SecretStr, ...], NoDecode] = ()
    metrics_key: SecretStr | None = Field(
        None,
        min_length=1,  # an empty variable must not read as "no key needed"
        description="Bearer token /metrics requires; unset = /metrics is open.",
    )
    policy: Path = DEFAULT_POLICY
    default_policy: str | None = None

    selectable_policies: Annotated[tuple[str, ...] | None, NoDecode] = Field(
        None,
        description="Policy names clients may pick with X-Sluicegate-Policy; unset = any loaded.",
    )
    policy_reload_seconds: float = Field(
        2.0, ge=0, description="How often policy files are checked for changes; 0 = never."
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect upstream.")
    read_timeout: float = Field(
        120.0, gt=0, description="Seconds of upstream silence before a stream is failed."
    )
    client_header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client connection may go without a complete request head "
        "(from connecting, or from the end of the last response: idle keep-alive included).",
    )
    client_body_timeout: float = Field(
        30.0, gt=0, description="Seconds a client may take to send a moderated request's body."
    )
    max_request_bytes: int = Field(
        32 * 1024 * 1024, ge=1024, description="Largest moderated request body accepted."
    )
    max_response_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest non-streamed body that is moderated."
    )
    max_connections: int = Field(256, ge=1, description="Upstream connection pool size.")
    max_concurrent_requests: int = Field(
        1024, ge=1, description="Moderated requests in flight at once; past it, 429."
    )
    keepalive_seconds: float = Field(
        15.0, ge=0, description="SSE comment sent while text is held this long; 0 = never."
    )
    classifier_url: str | None = Field(
        None,
        description="Base URL (with /v1) for classifier rules that name none; default: the "
        "upstream.",
    )
    classifier_concurrency: int = Field(
        64, ge=1, description="Classifier calls in flight at once, across all requests."
    )
    classifier_concurrency_per_stream: int = Field(
        4, ge=1, description="Classifier calls in flight at once for one request."
    )
    classifier_cache_size: int = Field(
        4096, ge=0, description="Verdicts remembered (keyed by model, context and segment)."
    )
    classifier_input_chars: int = Field(
        16_000,
        ge=256,
        description="Characters of a request's newest text that input classifier rules judge.",
    )
    classifier_backlog: int = Field(
        262_144,
        ge=1024,
        description="Characters of upstream events one stream may queue for verdicts "
        "before reading from upstream pauses.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    audit_log: Path | None = Field(
        None, description="JSON-lines file of every rule hit (ids and spans, never text)."
    )
    demo_pace: float = Field(
        0.03, ge=0, description="Seconds between demo-upstream events (human reading pace)."
    )

    @field_validator("api_keys", "selectable_policies", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        """Comma-separated; a variable that is set but lists nothing is a mistake.

        An empty ``SLUICEGATE_API_KEYS`` must not quietly turn authentication off.
        """
        if isinstance(value, str):
            items = tuple(k.strip() for k in value.split(",") if k.strip())
            if not items:
                raise ValueError("is set but lists nothing; unset it instead")
            return items
        return value

    @field_validator("upstream_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @property
    def is_demo(self) -> bool:
        return self.upstream_url == DEMO_UPSTREAM
