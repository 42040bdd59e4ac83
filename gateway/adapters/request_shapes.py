"""The structural allow-list of each API's request body (``request_text`` walks it).

Only what is listed here escapes the input rules, and only in its place: a ``role``
inside a message is structural, a ``role`` inside a tool's JSON schema is a property
name like any other. Listed member *names* are not moderated. Listed *values* escape
only when they have their shape:

- ``ENUM``: lower-case enum values the upstream validates (``role``, ``type``,
  ``detail``, ``reasoning_effort``, ``service_tier``, ``truncation``, ``include[]``,
  ``modalities[]``, ``voice``, ``status``, a JSON schema's ``type`` and ``format``). A rule
  that happens to match ``system`` or ``high`` must not refuse every request;
- ``DATA_URL`` / ``BASE64`` / ``OPAQUE``: bytes, not text (a base64 ``data:`` URL of an
  image, audio or file; generated images; encrypted reasoning; signatures). Scanning them
  would cost a pass over megabytes and redact random runs of base64 into broken images.

A value without its shape (a space in a role, prose in an image URL) is moderated as text.
Ids, model names, ``user`` and ``http(s)`` URLs are listed (``_ID``, ``_MODEL``, ``_URL``)
but moderated like text: the client chooses them, so they can carry a secret (a key in
``user``, a token in a signed URL's query). A rule almost never fires on one, so they pass
untouched; when one does, the value is redacted or the request blocked like any text.
Everything not listed is text: names the model reads (``name``, tool and function
names), descriptions, JSON schemas (keywords aside), ``stop`` sequences, ``metadata``.
"""

from __future__ import annotations

import re

from gateway.adapters.request_text import FREE, RequestText, Spec, shape

ENUM = shape(r"[a-z0-9_.-]{1,64}")
_DATA_URL = r"data:[\w.+-]+/[\w.+-]+(?:;[\w.+=-]+)*;base64,[A-Za-z0-9+/]*={0,2}"
_BASE64 = r"[A-Za-z0-9+/]+={0,2}"
DATA_URL = shape(_DATA_URL)
FILE_DATA = shape(_DATA_URL, _BASE64)
BASE64 = shape(_BASE64)
OPAQUE = shape(r"[A-Za-z0-9+/=_-]+")

TEXT = FREE


def leaf(pattern: re.Pattern[str]) -> Spec:
    """A member whose string value is structural when it has this shape."""
    return Spec(shape=pattern)


def obj(pattern: re.Pattern[str] | None = None, /, **fields: Spec) -> Spec:
    """An object with known members (and, with ``pattern``, a structural string form)."""
    return Spec(shape=pattern, fields=dict(fields))


def names(*keys: str) -> dict[str, Spec]:
    """Known member names whose values are text (or numbers, flags)."""
    return dict.fromkeys(keys, TEXT)


_ENUM = leaf(ENUM)
_MEDIA = leaf(DATA_URL)  # an http(s) URL in the same slot is moderated like text
#: Client-chosen strings the model does not read: known names, values moderated like text.
_ID = _MODEL = _URL = TEXT
_UNREADABLE = Spec(unreadable=True)
#: vLLM and friends: prompts as token ids or embeddings, which no rule can read.
UNREADABLE_FIELDS = {"prompt_token_ids": _UNREADABLE, "prompt_embeds": _UNREADABLE}

# -- JSON schema (tool parameters, structured outputs): keywords known, names are text --

SCHEMA = Spec()
_SCHEMA_MAP = Spec(members=SCHEMA)  # property names are text the model reads
SCHEMA.fields.update(
    {
        "type": _ENUM,
        "format": _ENUM,
        **dict.fromkeys(
            (
                "properties",
                "patternProperties",
                "$defs",
                "definitions",
                "dependentSchemas",
            ),
            _SCHEMA_MAP,
        ),
        **dict.fromkeys(
            (
                "items",
                "prefixItems",
                "additionalProperties",
                "additionalItems",
                "unevaluatedProperties",
                "unevaluatedItems",
                "anyOf",
                "oneOf",
                "allOf",
                "not",
                "if",
                "then",
                "else",
                "contains",
                "propertyNames",
            ),
            SCHEMA,
        ),
        **names(
            "description",
            "title",
            "enum",
            "const",
            "default",
            "examples",
            "required",
            "pattern",
            "$ref",
            "$schema",
            "$id",
            "$comment",
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
            "minLength",
            "maxLength",
            "minItems",
            "maxItems",
            "uniqueItems",
            "minProperties",
            "maxProperties",
            "nullable",
            "strict",
        ),
    }
)

# -- content parts and input items (chat and responses share one vocabulary) ----------

_ANNOTATION = obj(
    type=_ENUM,
    url=_URL,
    file_id=_ID,
    container_id=_ID,
    **names("title", "filename", "start_index", "end_index", "index"),
)
_ANNOTATION.fields["url_citation"] = _ANNOTATION
_AUDIO = obj(data=leaf(BASE64), format=_ENUM)
_FILE = obj(file_id=_ID, file_data=leaf(FILE_DATA), file_url=_URL, filename=TEXT)

PART = obj(
    type=_ENUM,
    image_url=obj(DATA_URL, url=_MEDIA, detail=_ENUM),  # chat: an object; responses: the URL
    detail=_ENUM,
    file=_FILE,
    file_id=_ID,
    file_data=leaf(FILE_DATA),
    file_url=_URL,
    input_audio=_AUDIO,
    audio_url=obj(url=_MEDIA),
    video_url=obj(url=_MEDIA),
    annotations=_ANNOTATION,
    signature=leaf(OPAQUE),  # a thinking part's signature
    data=leaf(OPAQUE),  # redacted thinking
    outcome=obj(type=_ENUM, exit_code=TEXT),  # shell_call_output
    **names("text", "refusal", "thinking", "filename", "logprobs", "stdout", "stderr"),
)

_TOOL_CALL = obj(
    id=_ID,
    type=_ENUM,
    function=obj(**names("name", "arguments")),
    custom=obj(**names("name", "input")),
)
_SAFETY_CHECK = obj(id=_ID, code=_ENUM, message=TEXT)
_ACTION = obj(
    type=_ENUM,
    button=_ENUM,
    url=_URL,
    sources=obj(type=_ENUM, url=_URL),
    env=Spec(members=FREE),
    **names("x", "y", "keys", "text", "path", "scroll_x", "scroll_y", "command", "commands"),
    **names("timeout_ms", "user", "working_directory", "query", "pattern", "max_output_length"),
)
_MCP_TOOL = obj(input_schema=SCHEMA, **names("name", "description", "annotations"))

#: A chat message or a Responses input item (every item type in one vocabulary).
ITEM = obj(
    type=_ENUM,
    role=_ENUM,
    id=_ID,
    call_id=_ID,
    tool_call_id=_ID,
    approval_request_id=_ID,
    container_id=_ID,
    status=_ENUM,
    content=PART,
    output=PART,
    summary=PART,
    tool_calls=_TOOL_CALL,
    function_call=obj(**names("name", "arguments")),
    audio=obj(id=_ID),
    encrypted_content=leaf(OPAQUE),
    result=leaf(BASE64),  # image_generation_call
    action=_ACTION,
    operation=obj(type=_ENUM, **names("path", "diff")),  # apply_patch_call
    outputs=obj(type=_ENUM, url=_MEDIA, logs=TEXT),  # code_interpreter_call
    results=obj(file_id=_ID, **names("filename", "text", "score", "attributes")),
    tools=_MCP_TOOL,
    pending_safety_checks=_SAFETY_CHECK,
    acknowledged_safety_checks=_SAFETY_CHECK,
    **names("name", "refusal", "arguments", "input", "reasoning_content", "reasoning"),
    **names("queries", "code", "server_label", "error", "approve", "reason"),
    **names("max_output_length"),
)
ITEM.fields.update((k, v) for k, v in PART.fields.items() if k not in ITEM.fields)

# -- tools and tool choice ----------------------------------------------------------------

_FUNCTION = obj(parameters=SCHEMA, **names("name", "description", "strict"))
_GRAMMAR_FORMAT = obj(
    type=_ENUM,
    syntax=_ENUM,
    grammar=obj(syntax=_ENUM, definition=TEXT),
    definition=TEXT,
)
TOOL = obj(
    type=_ENUM,
    function=_FUNCTION,
    custom=obj(format=_GRAMMAR_FORMAT, **names("name", "description")),
    parameters=SCHEMA,
    format=_GRAMMAR_FORMAT,
    vector_store_ids=_ID,
    ranking_options=obj(ranker=_ENUM, score_threshold=TEXT),
    search_context_size=_ENUM,
    user_location=obj(type=_ENUM),
    environment=_ENUM,
    server_url=_URL,
    connector_id=_ID,
    require_approval=obj(ENUM),
    container=obj(type=_ENUM, file_ids=_ID, memory_limit=_ENUM),
    background=_ENUM,
    input_fidelity=_ENUM,
    input_image_mask=obj(image_url=_MEDIA, file_id=_ID),
    model=_MODEL,
    moderation=_ENUM,
    output_format=_ENUM,
    quality=_ENUM,
    size=_ENUM,
    **names("name", "description", "strict", "filters", "max_num_results", "display_width"),
    **names("display_height", "server_label", "server_description", "allowed_tools"),
    **names("authorization", "headers", "output_compression", "partial_images"),
)
_NAMED = obj(type=_ENUM, function=obj(name=TEXT), custom=obj(name=TEXT), **names("name"))
_NAMED.fields["server_label"] = TEXT
TOOL_CHOICE = obj(
    ENUM,
    mode=_ENUM,
    tools=_NAMED,
    allowed_tools=obj(mode=_ENUM, tools=_NAMED),
    **_NAMED.fields,
)
#: ``response_format`` (chat, vLLM completions) and ``text.format`` (responses).
FORMAT = obj(
    type=_ENUM,
    json_schema=obj(schema=SCHEMA, **names("name", "description", "strict")),
    schema=SCHEMA,
    **names("name", "description", "strict"),
)

# -- the three APIs ---------------------------------------------------------------------

_COMMON = {
    "model": _MODEL,
    "user": _ID,
    "safety_identifier": _ID,
    "prompt_cache_key": _ID,
    "prompt_cache_retention": _ENUM,
    "service_tier": _ENUM,
    "metadata": Spec(members=FREE),  # not read by the model, but stored upstream: text
    "stream_options": obj(**names("include_usage", "include_obfuscation")),
    **names("stream", "store", "temperature", "top_p", "n", "seed", "stop", "logprobs"),
    **names("top_logprobs", "max_tokens", "presence_penalty", "frequency_penalty"),
    **names("logit_bias", "parallel_tool_calls"),
    **UNREADABLE_FIELDS,
}

CHAT = obj(
    messages=ITEM,
    tools=TOOL,
    functions=_FUNCTION,
    tool_choice=TOOL_CHOICE,
    function_call=obj(ENUM, name=TEXT),
    response_format=FORMAT,
    reasoning_effort=_ENUM,
    verbosity=_ENUM,
    modalities=_ENUM,
    audio=obj(voice=obj(ENUM, id=_ID), format=_ENUM),
    prediction=obj(type=_ENUM, content=PART),
    web_search_options=obj(
        search_context_size=_ENUM,
        user_location=obj(type=_ENUM, approximate=obj(**names("city", "country", "region"))),
    ),
    **_COMMON,
    **names("max_completion_tokens"),
)

RESPONSES = obj(
    input=ITEM,
    instructions=ITEM,
    tools=TOOL,
    tool_choice=TOOL_CHOICE,
    text=obj(format=FORMAT, verbosity=_ENUM),
    reasoning=obj(effort=_ENUM, summary=_ENUM, generate_summary=_ENUM),
    previous_response_id=_ID,
    conversation=obj(id=_ID),
    include=_ENUM,
    prompt=obj(id=_ID, version=_ID, variables=Spec(members=PART)),
    truncation=_ENUM,
    context_management=obj(type=_ENUM, compact_threshold=TEXT),
    **_COMMON,
    **names("background", "max_output_tokens", "max_tool_calls"),
)

COMPLETIONS = obj(
    prompt=Spec(tokens=True),
    response_format=FORMAT,
    **_COMMON,
    **names("suffix", "echo", "best_of"),
)

CHAT_TEXT = RequestText(CHAT)
RESPONSES_TEXT = RequestText(RESPONSES)
COMPLETIONS_TEXT = RequestText(COMPLETIONS)
