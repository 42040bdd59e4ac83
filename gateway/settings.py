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
    offload_bytes: int = Field(
        16 * 1024,
        ge=0,
        description="Request and non-streamed answer bodies this large or larger are "
        "moderated on a worker thread, so the event loop keeps serving others.",
    )
    offload_threads: int = Field(
        2, ge=1, description="Worker threads moderating big bodies; more queue for one."
    )
    max_connections: int = Field(256, ge=1, description="Upstream connection pool size.")
    max_concurrent_requests: int = Field(
        1024, ge=1, description="Moderated requests in flight at once; past it, 429."
    )
    max_stream_channels: int = Field(
        4096,
        ge=1,
        description="Channels and records one moderated answer may open (choices, output "
        "items, parts, tool calls, unknown fields); past it, the answer ends with an error.",
    )
    max_pending_entries: int = Field(
        16_384,
        ge=1,
        description="Logprob and annotation entries one moderated answer may hold while "
        "their text is not released; past it, the answer ends with an error.",
    )
    scan_budget_ms: int = Field(
        2000,
        ge=1,
        description="Milliseconds of pattern scanning one request may spend, its input and "
        "every channel of its answer together, before what its size earns "
        "(SLUICEGATE_SCAN_BUDGET_MS_PER_MB); past it, the request ends with an error.",
    )
    scan_budget_ms_per_mb: int = Field(
        20_000,
        ge=0,
        description="Milliseconds of scan time each MiB of a request's body and of its "
        "upstream answer adds to SLUICEGATE_SCAN_BUDGET_MS (benign text needs about a tenth).",
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
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="Log lines on stderr: 'auto' = text on a terminal, else JSON lines."
    )
    audit_log: Literal["-", "stdout"] | Path | None = Field(
        None,
        description="Where every rule hit is written as a JSON line: a file (reopened when "
        "rotated), or '-' / 'stdout'; unset = no audit log.",
    )
    audit_hash_key: SecretStr | None = Field(
        None,
        min_length=16,  # a short key would let anyone who guesses it test candidate texts
        description="Key for an HMAC-SHA256 of each hit's matched text in the audit log; "
        "unset = no hash.",
    )
    audit_text: bool = Field(
        False, description="Write each hit's matched text into the audit log (opt-in)."
    )
    ui: bool = Field(False, description="Serve the policy playground at /ui (docs/playground.md).")
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
