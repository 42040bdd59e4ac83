"""The route table: every OpenAI API route and what the gateway does with it (default deny).

Every HTTP route the pinned ``openai`` SDK can call is listed here in exactly one class
(tests/test_route_table.py reads the routes out of the SDK's source and fails on one that is
missing, so a new SDK version cannot add a route nobody classified):

- ``MODERATED``: the model answers the request. Input rules on the request, output rules on
  the answer, streamed or not (``gateway.proxy.moderated``).
- ``STORED_MODERATED``: stored model text read back (Chat Completions with ``store``,
  Responses, Conversation items), or text stored to become model input later (Conversation
  items): the same adapters moderate it (``gateway.proxy.retrieval``).
- ``TEXT_FREE``: no model text either way (models, embeddings, file metadata, fine-tuning,
  administration): forwarded unchanged (``gateway.proxy.passthrough``).
- ``REFUSED``: returns model text the gateway cannot moderate (file contents, realtime
  sockets, the Assistants API, ...): 403 ``route_not_moderated``, never forwarded.

Anything else is refused as well: a path no route matches is a 404 ``route_not_moderated``
(the gateway cannot know what an unknown route returns), a known path with another method
a 405, and a path that routes differently once lower-cased (``/v1/Chat/Completions``, for
an upstream that routes case-insensitively) a 400 ``invalid_path``. ``HEAD`` is accepted
where ``GET`` is text-free, ``OPTIONS`` (CORS preflight, no body) on every known path.

Patterns are relative to ``/v1``, as in the SDK; ``{name}`` is one path segment.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass


class RouteClass(enum.Enum):
    MODERATED = "moderated"
    STORED_MODERATED = "stored_moderated"
    TEXT_FREE = "text_free"
    REFUSED = "refused"


PASSTHROUGH = "passthrough"
"""The route name (and ``route`` metric label) of everything forwarded or refused."""


@dataclass(frozen=True, slots=True)
class Route:
    """One method on one path pattern; ``name`` is its handler's route name."""

    method: str
    pattern: str
    kind: RouteClass
    name: str = PASSTHROUGH
    reason: str = ""

    @property
    def path(self) -> str:
        """The pattern as the gateway serves it, e.g. ``/v1/chat/completions``."""
        return "/v1" + self.pattern


# -- the table -------------------------------------------------------------------------
# One route a line: METHOD PATTERN [NAME]. A name is the aiohttp route name and the
# bounded ``route`` metric label of a moderated or stored route.

_MODERATED = """
POST   /chat/completions                                    chat_completions
POST   /completions                                         completions
POST   /responses                                           responses
POST   /responses/compact                                   responses_compact
"""

_STORED_MODERATED = """
GET    /chat/completions                                    stored_chat_list
GET    /chat/completions/{completion_id}                    stored_chat
POST   /chat/completions/{completion_id}                    stored_chat_update
GET    /chat/completions/{completion_id}/messages           stored_chat_messages
GET    /responses/{response_id}                             stored_response
POST   /responses/{response_id}/cancel                      stored_response_cancel
GET    /responses/{response_id}/input_items                 stored_response_input_items
POST   /conversations                                       conversation_create
GET    /conversations/{conversation_id}/items               conversation_items
POST   /conversations/{conversation_id}/items               conversation_items_create
GET    /conversations/{conversation_id}/items/{item_id}     conversation_item
"""

# Judgement calls (docs/security.md, "Routes"): audio/speech speaks the client's own text,
# decisions answer with scores and the request's own choices, videos and speech are media
# (never moderated), batch and eval outputs are refused where they are read (file contents,
# output items), deletions and conversation metadata carry no text.
_TEXT_FREE = """
POST   /audio/speech
GET    /audio/voice_consents
POST   /audio/voice_consents
DELETE /audio/voice_consents/{consent_id}
GET    /audio/voice_consents/{consent_id}
POST   /audio/voice_consents/{consent_id}
POST   /audio/voices
DELETE /audio/voices/{voice_id}
GET    /batches
POST   /batches
GET    /batches/{batch_id}
POST   /batches/{batch_id}/cancel
DELETE /chat/completions/{completion_id}
GET    /containers
POST   /containers
DELETE /containers/{container_id}
GET    /containers/{container_id}
GET    /containers/{container_id}/files
POST   /containers/{container_id}/files
DELETE /containers/{container_id}/files/{file_id}
GET    /containers/{container_id}/files/{file_id}
POST   /content_provenance_checks
DELETE /conversations/{conversation_id}
GET    /conversations/{conversation_id}
POST   /conversations/{conversation_id}
DELETE /conversations/{conversation_id}/items/{item_id}
POST   /decisions
POST   /embeddings
GET    /evals
POST   /evals
DELETE /evals/{eval_id}
GET    /evals/{eval_id}
POST   /evals/{eval_id}
GET    /evals/{eval_id}/runs
POST   /evals/{eval_id}/runs
DELETE /evals/{eval_id}/runs/{run_id}
GET    /evals/{eval_id}/runs/{run_id}
POST   /evals/{eval_id}/runs/{run_id}/cancel
GET    /files
POST   /files
DELETE /files/{file_id}
GET    /files/{file_id}
POST   /fine_tuning/alpha/graders/run
POST   /fine_tuning/alpha/graders/validate
GET    /fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions
POST   /fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions
DELETE /fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions/{permission_id}
GET    /fine_tuning/jobs
POST   /fine_tuning/jobs
GET    /fine_tuning/jobs/{fine_tuning_job_id}
POST   /fine_tuning/jobs/{fine_tuning_job_id}/cancel
GET    /fine_tuning/jobs/{fine_tuning_job_id}/checkpoints
GET    /fine_tuning/jobs/{fine_tuning_job_id}/events
POST   /fine_tuning/jobs/{fine_tuning_job_id}/pause
POST   /fine_tuning/jobs/{fine_tuning_job_id}/resume
GET    /models
DELETE /models/{model}
GET    /models/{model}
POST   /moderations
GET    /organization/admin_api_keys
POST   /organization/admin_api_keys
DELETE /organization/admin_api_keys/{key_id}
GET    /organization/admin_api_keys/{key_id}
GET    /organization/audit_logs
GET    /organization/certificates
POST   /organization/certificates
POST   /organization/certificates/activate
POST   /organization/certificates/deactivate
DELETE /organization/certificates/{certificate_id}
GET    /organization/certificates/{certificate_id}
POST   /organization/certificates/{certificate_id}
GET    /organization/costs
GET    /organization/data_retention
POST   /organization/data_retention
GET    /organization/external_keys
POST   /organization/external_keys
DELETE /organization/external_keys/{external_key_id}
GET    /organization/external_keys/{external_key_id}
POST   /organization/external_keys/{external_key_id}/validate
GET    /organization/external_storage
POST   /organization/external_storage
DELETE /organization/external_storage/{external_storage_id}
GET    /organization/external_storage/{external_storage_id}
POST   /organization/external_storage/{external_storage_id}/validate
GET    /organization/groups
POST   /organization/groups
DELETE /organization/groups/{group_id}
GET    /organization/groups/{group_id}
POST   /organization/groups/{group_id}
GET    /organization/groups/{group_id}/roles
POST   /organization/groups/{group_id}/roles
DELETE /organization/groups/{group_id}/roles/{role_id}
GET    /organization/groups/{group_id}/roles/{role_id}
GET    /organization/groups/{group_id}/users
POST   /organization/groups/{group_id}/users
DELETE /organization/groups/{group_id}/users/{user_id}
GET    /organization/groups/{group_id}/users/{user_id}
GET    /organization/invites
POST   /organization/invites
DELETE /organization/invites/{invite_id}
GET    /organization/invites/{invite_id}
GET    /organization/projects
POST   /organization/projects
GET    /organization/projects/{project_id}
POST   /organization/projects/{project_id}
GET    /organization/projects/{project_id}/api_keys
DELETE /organization/projects/{project_id}/api_keys/{api_key_id}
GET    /organization/projects/{project_id}/api_keys/{api_key_id}
POST   /organization/projects/{project_id}/api_keys/{api_key_id}
POST   /organization/projects/{project_id}/archive
GET    /organization/projects/{project_id}/certificates
POST   /organization/projects/{project_id}/certificates/activate
POST   /organization/projects/{project_id}/certificates/deactivate
GET    /organization/projects/{project_id}/data_retention
POST   /organization/projects/{project_id}/data_retention
GET    /organization/projects/{project_id}/groups
POST   /organization/projects/{project_id}/groups
DELETE /organization/projects/{project_id}/groups/{group_id}
GET    /organization/projects/{project_id}/groups/{group_id}
GET    /organization/projects/{project_id}/hosted_tool_permissions
POST   /organization/projects/{project_id}/hosted_tool_permissions
DELETE /organization/projects/{project_id}/model_permissions
GET    /organization/projects/{project_id}/model_permissions
POST   /organization/projects/{project_id}/model_permissions
GET    /organization/projects/{project_id}/rate_limits
POST   /organization/projects/{project_id}/rate_limits/{rate_limit_id}
GET    /organization/projects/{project_id}/service_accounts
POST   /organization/projects/{project_id}/service_accounts
DELETE /organization/projects/{project_id}/service_accounts/{service_account_id}
GET    /organization/projects/{project_id}/service_accounts/{service_account_id}
POST   /organization/projects/{project_id}/service_accounts/{service_account_id}
POST   /organization/projects/{project_id}/service_accounts/{service_account_id}/api_keys
GET    /organization/projects/{project_id}/service_tier_settings
POST   /organization/projects/{project_id}/service_tier_settings
GET    /organization/projects/{project_id}/spend_alerts
POST   /organization/projects/{project_id}/spend_alerts
DELETE /organization/projects/{project_id}/spend_alerts/{alert_id}
GET    /organization/projects/{project_id}/spend_alerts/{alert_id}
POST   /organization/projects/{project_id}/spend_alerts/{alert_id}
DELETE /organization/projects/{project_id}/spend_limit
GET    /organization/projects/{project_id}/spend_limit
POST   /organization/projects/{project_id}/spend_limit
GET    /organization/projects/{project_id}/users
POST   /organization/projects/{project_id}/users
DELETE /organization/projects/{project_id}/users/{user_id}
GET    /organization/projects/{project_id}/users/{user_id}
POST   /organization/projects/{project_id}/users/{user_id}
GET    /organization/roles
POST   /organization/roles
DELETE /organization/roles/{role_id}
GET    /organization/roles/{role_id}
POST   /organization/roles/{role_id}
GET    /organization/spend_alerts
POST   /organization/spend_alerts
DELETE /organization/spend_alerts/{alert_id}
GET    /organization/spend_alerts/{alert_id}
POST   /organization/spend_alerts/{alert_id}
DELETE /organization/spend_limit
GET    /organization/spend_limit
POST   /organization/spend_limit
GET    /organization/usage/audio_speeches
GET    /organization/usage/audio_transcriptions
GET    /organization/usage/code_interpreter_sessions
GET    /organization/usage/completions
GET    /organization/usage/decisions
GET    /organization/usage/embeddings
GET    /organization/usage/file_search_calls
GET    /organization/usage/images
GET    /organization/usage/moderations
GET    /organization/usage/vector_stores
GET    /organization/usage/web_search_calls
GET    /organization/users
DELETE /organization/users/{user_id}
GET    /organization/users/{user_id}
POST   /organization/users/{user_id}
GET    /organization/users/{user_id}/roles
POST   /organization/users/{user_id}/roles
DELETE /organization/users/{user_id}/roles/{role_id}
GET    /organization/users/{user_id}/roles/{role_id}
GET    /organization/workload_identity_providers
POST   /organization/workload_identity_providers
DELETE /organization/workload_identity_providers/{provider_id}
GET    /organization/workload_identity_providers/{provider_id}
POST   /organization/workload_identity_providers/{provider_id}
GET    /organization/workload_identity_providers/{provider_id}/federation_rules
POST   /organization/workload_identity_providers/{provider_id}/federation_rules
DELETE /organization/workload_identity_providers/{provider_id}/federation_rules/{rule_id}
GET    /organization/workload_identity_providers/{provider_id}/federation_rules/{rule_id}
POST   /organization/workload_identity_providers/{provider_id}/federation_rules/{rule_id}
GET    /projects/{project_id}/groups/{group_id}/roles
POST   /projects/{project_id}/groups/{group_id}/roles
DELETE /projects/{project_id}/groups/{group_id}/roles/{role_id}
GET    /projects/{project_id}/groups/{group_id}/roles/{role_id}
GET    /projects/{project_id}/roles
POST   /projects/{project_id}/roles
DELETE /projects/{project_id}/roles/{role_id}
GET    /projects/{project_id}/roles/{role_id}
POST   /projects/{project_id}/roles/{role_id}
GET    /projects/{project_id}/users/{user_id}/roles
POST   /projects/{project_id}/users/{user_id}/roles
DELETE /projects/{project_id}/users/{user_id}/roles/{role_id}
GET    /projects/{project_id}/users/{user_id}/roles/{role_id}
POST   /responses/input_tokens
DELETE /responses/{response_id}
GET    /safety/alerts/{id}
GET    /safety/cases/{id}
GET    /skills
POST   /skills
DELETE /skills/{skill_id}
GET    /skills/{skill_id}
POST   /skills/{skill_id}
GET    /skills/{skill_id}/content
GET    /skills/{skill_id}/versions
POST   /skills/{skill_id}/versions
DELETE /skills/{skill_id}/versions/{version}
GET    /skills/{skill_id}/versions/{version}
GET    /skills/{skill_id}/versions/{version}/content
POST   /uploads
POST   /uploads/{upload_id}/cancel
POST   /uploads/{upload_id}/complete
POST   /uploads/{upload_id}/parts
GET    /vaults
POST   /vaults
DELETE /vaults/{vault_id}
GET    /vaults/{vault_id}
POST   /vaults/{vault_id}
GET    /vaults/{vault_id}/credentials
POST   /vaults/{vault_id}/credentials
DELETE /vaults/{vault_id}/credentials/{credential_id}
GET    /vaults/{vault_id}/credentials/{credential_id}
POST   /vaults/{vault_id}/credentials/{credential_id}
GET    /vector_stores
POST   /vector_stores
DELETE /vector_stores/{vector_store_id}
GET    /vector_stores/{vector_store_id}
POST   /vector_stores/{vector_store_id}
POST   /vector_stores/{vector_store_id}/file_batches
GET    /vector_stores/{vector_store_id}/file_batches/{batch_id}
POST   /vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel
GET    /vector_stores/{vector_store_id}/file_batches/{batch_id}/files
GET    /vector_stores/{vector_store_id}/files
POST   /vector_stores/{vector_store_id}/files
DELETE /vector_stores/{vector_store_id}/files/{file_id}
GET    /vector_stores/{vector_store_id}/files/{file_id}
POST   /vector_stores/{vector_store_id}/files/{file_id}
GET    /videos
POST   /videos
POST   /videos/characters
GET    /videos/characters/{character_id}
POST   /videos/edits
POST   /videos/extensions
DELETE /videos/{video_id}
GET    /videos/{video_id}
GET    /videos/{video_id}/content
POST   /videos/{video_id}/remix
GET    /webhook_endpoints
POST   /webhook_endpoints
DELETE /webhook_endpoints/{webhook_endpoint_id}
GET    /webhook_endpoints/{webhook_endpoint_id}
POST   /webhook_endpoints/{webhook_endpoint_id}
POST   /webhook_endpoints/{webhook_endpoint_id}/rotate_secret
POST   /webhook_endpoints/{webhook_endpoint_id}/test
GET    /webhook_event_types
"""

# Why each group is refused: the end of the ``route_not_moderated`` message.
_FILES_WHY = (
    "it returns file contents, which can hold model output (batch results, generated files) "
    "the gateway cannot moderate"
)
_EVALS_WHY = "eval output items hold model samples the gateway has no adapter for"
_IMAGES_WHY = (
    "images come back with model-written text (revised_prompt) and as partial-image streams "
    "the gateway has no adapter for"
)
_AUDIO_WHY = "transcripts and translations are model-written text the gateway has no adapter for"
_ASSISTANTS_WHY = (
    "the Assistants API (assistants, threads, messages, runs) returns and streams model text "
    "the gateway has no adapter for"
)
_AGENTS_WHY = (
    "agent sessions, turns, items and events return and stream model text the gateway has no "
    "adapter for"
)
_CHATKIT_WHY = (
    "ChatKit sessions let a client reach the model around the gateway, and ChatKit threads "
    "return model text it has no adapter for"
)
_REALTIME_WHY = (
    "Realtime, Live and the Responses WebSocket mode carry model text over WebSockets, WebRTC "
    "or SIP, which the gateway does not relay, or hand out keys to reach the model directly"
)

_FILES = """
GET    /containers/{container_id}/files/{file_id}/content
GET    /files/{file_id}/content
GET    /vector_stores/{vector_store_id}/files/{file_id}/content
POST   /vector_stores/{vector_store_id}/search
"""

_EVALS = """
GET    /evals/{eval_id}/runs/{run_id}/output_items
GET    /evals/{eval_id}/runs/{run_id}/output_items/{output_item_id}
"""

_IMAGES = """
POST   /images/edits
POST   /images/generations
POST   /images/variations
"""

_AUDIO = """
POST   /audio/transcriptions
POST   /audio/translations
"""

_ASSISTANTS = """
GET    /assistants
POST   /assistants
DELETE /assistants/{assistant_id}
GET    /assistants/{assistant_id}
POST   /assistants/{assistant_id}
POST   /threads
POST   /threads/runs
DELETE /threads/{thread_id}
GET    /threads/{thread_id}
POST   /threads/{thread_id}
GET    /threads/{thread_id}/messages
POST   /threads/{thread_id}/messages
DELETE /threads/{thread_id}/messages/{message_id}
GET    /threads/{thread_id}/messages/{message_id}
POST   /threads/{thread_id}/messages/{message_id}
GET    /threads/{thread_id}/runs
POST   /threads/{thread_id}/runs
GET    /threads/{thread_id}/runs/{run_id}
POST   /threads/{thread_id}/runs/{run_id}
POST   /threads/{thread_id}/runs/{run_id}/cancel
GET    /threads/{thread_id}/runs/{run_id}/steps
GET    /threads/{thread_id}/runs/{run_id}/steps/{step_id}
POST   /threads/{thread_id}/runs/{run_id}/submit_tool_outputs
"""

_AGENTS = """
GET    /agents
POST   /agents
GET    /agents/automations
POST   /agents/automations
DELETE /agents/automations/{automation_id}
GET    /agents/automations/{automation_id}
POST   /agents/automations/{automation_id}
GET    /agents/automations/{automation_id}/invocations
POST   /agents/automations/{automation_id}/invocations
GET    /agents/automations/{automation_id}/invocations/{invocation_id}
POST   /agents/automations/{automation_id}/pause
POST   /agents/automations/{automation_id}/resume
GET    /agents/environments
POST   /agents/environments
GET    /agents/environments/templates
POST   /agents/environments/templates
DELETE /agents/environments/templates/{environment_template_id}
GET    /agents/environments/templates/{environment_template_id}
POST   /agents/environments/templates/{environment_template_id}
GET    /agents/environments/{environment_id}
GET    /agents/environments/{environment_id}/files
POST   /agents/environments/{environment_id}/files
GET    /agents/sessions
POST   /agents/sessions
DELETE /agents/sessions/{session_id}
GET    /agents/sessions/{session_id}
POST   /agents/sessions/{session_id}
GET    /agents/sessions/{session_id}/artifacts
DELETE /agents/sessions/{session_id}/artifacts/{artifact_id}
GET    /agents/sessions/{session_id}/artifacts/{artifact_id}
GET    /agents/sessions/{session_id}/artifacts/{artifact_id}/content
GET    /agents/sessions/{session_id}/events
POST   /agents/sessions/{session_id}/events
GET    /agents/sessions/{session_id}/items
GET    /agents/sessions/{session_id}/subagents
GET    /agents/sessions/{session_id}/subagents/{subagent_id}
GET    /agents/sessions/{session_id}/subagents/{subagent_id}/items
GET    /agents/sessions/{session_id}/subagents/{subagent_id}/turns
GET    /agents/sessions/{session_id}/subagents/{subagent_id}/turns/{turn_id}
GET    /agents/sessions/{session_id}/subagents/{subagent_id}/turns/{turn_id}/items
GET    /agents/sessions/{session_id}/traces
GET    /agents/sessions/{session_id}/turns
GET    /agents/sessions/{session_id}/turns/{turn_id}
GET    /agents/sessions/{session_id}/turns/{turn_id}/items
DELETE /agents/{agent_id}
GET    /agents/{agent_id}
POST   /agents/{agent_id}
"""

_CHATKIT = """
POST   /chatkit/sessions
POST   /chatkit/sessions/{session_id}/cancel
GET    /chatkit/threads
DELETE /chatkit/threads/{thread_id}
GET    /chatkit/threads/{thread_id}
GET    /chatkit/threads/{thread_id}/items
"""

_REALTIME = """
GET    /live/sessions
POST   /live/sessions
POST   /live/sessions/{session_id}/accept
GET    /live/sessions/{session_id}/attach
GET    /live/sessions/{session_id}/content
GET    /live/sessions/{session_id}/fork
POST   /live/sessions/{session_id}/fork
POST   /live/sessions/{session_id}/hangup
POST   /live/sessions/{session_id}/refer
POST   /live/sessions/{session_id}/reject
GET    /realtime
POST   /realtime/calls
POST   /realtime/calls/{call_id}/accept
POST   /realtime/calls/{call_id}/hangup
POST   /realtime/calls/{call_id}/refer
POST   /realtime/calls/{call_id}/reject
POST   /realtime/client_secrets
POST   /realtime/sessions
POST   /realtime/transcription_sessions
GET    /realtime/translations
POST   /realtime/translations/client_secrets
GET    /responses
"""

_REFUSED: dict[str, str] = {
    _FILES: _FILES_WHY,
    _EVALS: _EVALS_WHY,
    _IMAGES: _IMAGES_WHY,
    _AUDIO: _AUDIO_WHY,
    _ASSISTANTS: _ASSISTANTS_WHY,
    _AGENTS: _AGENTS_WHY,
    _CHATKIT: _CHATKIT_WHY,
    _REALTIME: _REALTIME_WHY,
}


def _parse(table: str, kind: RouteClass, reason: str = "") -> Iterator[Route]:
    for line in table.strip().splitlines():
        method, pattern, *name = line.split()
        yield Route(method, pattern, kind, name[0] if name else PASSTHROUGH, reason)


ROUTES: tuple[Route, ...] = (
    *_parse(_MODERATED, RouteClass.MODERATED),
    *_parse(_STORED_MODERATED, RouteClass.STORED_MODERATED),
    *_parse(_TEXT_FREE, RouteClass.TEXT_FREE),
    *(r for table, why in _REFUSED.items() for r in _parse(table, RouteClass.REFUSED, why)),
)


def _of(kind: RouteClass) -> frozenset[tuple[str, str]]:
    return frozenset((r.method, r.pattern) for r in ROUTES if r.kind is kind)


MODERATED = _of(RouteClass.MODERATED)
STORED_MODERATED = _of(RouteClass.STORED_MODERATED)
TEXT_FREE = _of(RouteClass.TEXT_FREE)
REFUSED: Mapping[tuple[str, str], str] = {
    (r.method, r.pattern): r.reason for r in ROUTES if r.kind is RouteClass.REFUSED
}


# -- lookup ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    """What the table says about one request.

    ``route`` is set when the request may be served as that route (forwarded, moderated or
    refused per its class). Otherwise ``problem`` says why the path cannot be routed as
    spelt, or ``allowed`` lists the methods of a known path; neither means no route.
    """

    route: Route | None = None
    allowed: tuple[str, ...] = ()
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class _Pattern:
    pattern: str
    segments: tuple[str | None, ...]  # None: a parameter
    methods: dict[str, Route]

    @property
    def specificity(self) -> tuple[bool, ...]:
        """Literal segments win over parameters, from the left: ``/responses/compact``
        is not the response with id ``compact``."""
        return tuple(s is not None for s in self.segments)

    def matches(self, segments: list[str]) -> bool:
        return len(segments) == len(self.segments) and all(
            want is None or want == got for want, got in zip(self.segments, segments, strict=True)
        )


def _index(routes: tuple[Route, ...]) -> dict[str, list[_Pattern]]:
    patterns: dict[str, _Pattern] = {}
    for route in routes:
        if route.pattern not in patterns:
            segments = tuple(
                None if s.startswith("{") else s for s in route.path.removeprefix("/").split("/")
            )
            patterns[route.pattern] = _Pattern(route.pattern, segments, {})
        patterns[route.pattern].methods[route.method] = route
    index: dict[str, list[_Pattern]] = {}
    for pattern in patterns.values():
        # Every pattern starts "v1/<literal>": index on that literal.
        first = pattern.segments[1]
        assert first is not None
        index.setdefault(first, []).append(pattern)
    return index


_INDEX = _index(ROUTES)


def _best(segments: list[str]) -> _Pattern | None:
    if len(segments) < 2 or segments[0] != "v1":
        return None
    found = [p for p in _INDEX.get(segments[1], ()) if p.matches(segments)]
    return max(found, key=lambda p: p.specificity, default=None)


def resolve(method: str, path: str) -> Resolution:
    """The route for ``method`` on a canonical ``path`` (``/v1/...``, as received)."""
    segments = path.removeprefix("/").split("/")
    pattern = _best(segments)
    if pattern is not _best([s.lower() for s in segments]):
        return Resolution(problem="its fixed words do not route the same way once lower-cased")
    if pattern is None:
        return Resolution()
    route = pattern.methods.get(method)
    if route is None and method == "HEAD":
        get = pattern.methods.get("GET")
        route = get if get is not None and get.kind is RouteClass.TEXT_FREE else None
    if route is None and method == "OPTIONS":
        route = Route("OPTIONS", pattern.pattern, RouteClass.TEXT_FREE)
    if route is None:
        return Resolution(allowed=tuple(sorted(pattern.methods)))
    return Resolution(route=route)
