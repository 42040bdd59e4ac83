"""The playground's JSON API over real HTTP: the same answers as the command line.

The gateway runs with the demo upstream in-process (its classifiers judge the ``harm``
policy's rule), and requests go over loopback through aiohttp's client; the CLI answers
it is compared with come from ``gateway.cli.main`` itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient
from hypothesis import given
from hypothesis import strategies as st

from gateway.cli import main
from gateway.policy import BUNDLED_DIR, Direction, load_text
from gateway.proxy.app import create_app
from gateway.proxy.playground import MAX_BODY_BYTES, MAX_REPLAY_CHARS, chunk_text, replay
from gateway.settings import Settings
from gateway.sluice import moderate
from gateway.sluice.replay import holders
from gateway.sluice.verdicts import Verdict

DEFAULT = (BUNDLED_DIR / "default.yaml").read_text()
HARM = (BUNDLED_DIR / "harm.yaml").read_text()
SECRET_TEXT = (
    "write to jane.doe@example.com or use sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3i"
)
Client = Callable[..., Awaitable[TestClient[Any, Any]]]


def _settings(**more: Any) -> Settings:
    values: dict[str, Any] = {
        "upstream_url": "demo",
        "demo_pace": 0.0,
        "policy_reload_seconds": 0,
        "ui": True,
    }
    return Settings(_env_file=None, **(values | more))  # type: ignore[call-arg]


@pytest.fixture
async def ui(aiohttp_client: Client) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(_settings()))


async def _json(response: ClientResponse, status: int = 200) -> Any:
    assert response.status == status, await response.text()
    return await response.json()


# -- on, off, and keys -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/ui"), ("GET", "/ui/index.html"), ("GET", "/ui/api/live"), ("POST", "/ui/api/check")],
)
async def test_the_playground_is_off_by_default(
    aiohttp_client: Client, method: str, path: str
) -> None:
    client = await aiohttp_client(create_app(_settings(ui=False)))
    response = await client.request(method, path, json={"policy": DEFAULT})
    body = await _json(response, 404)
    assert set(body["error"]) == {"message", "type", "param", "code"}


def test_serve_ui_flag_and_variable_turn_it_on(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings(_env_file=None).ui is False  # type: ignore[call-arg]
    monkeypatch.setenv("SLUICEGATE_UI", "true")
    assert Settings(_env_file=None).ui is True  # type: ignore[call-arg]
    from gateway.cli import _parser

    assert _parser().parse_args(["serve", "--ui"]).ui is True
    assert _parser().parse_args(["serve"]).ui is None  # unset: the variable decides


async def test_the_page_and_its_files_are_served_from_the_package(ui: TestClient[Any, Any]) -> None:
    response = await ui.get("/ui", allow_redirects=False)
    assert response.status == 302
    assert response.headers["Location"] == "/ui/index.html"
    page = await ui.get("/ui/index.html")
    assert page.status == 200
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    html = await page.text()
    assert "/ui/static/app.js" in html and "http" not in html.replace("http-equiv", "")
    for name, kind in [("app.js", "javascript"), ("style.css", "css")]:
        static = await ui.get(f"/ui/static/{name}")
        assert static.status == 200 and kind in static.headers["Content-Type"]


async def test_client_keys_guard_the_api_but_not_the_page(aiohttp_client: Client) -> None:
    client = await aiohttp_client(create_app(_settings(api_keys=("k-one", "k-two"))))
    assert (await client.get("/ui/index.html")).status == 200
    assert (await client.get("/ui/static/app.js")).status == 200
    for headers in [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "k-one"}]:
        response = await client.post("/ui/api/check", json={"policy": DEFAULT}, headers=headers)
        assert (await _json(response, 401))["error"]["code"] == "invalid_api_key"
        assert (await client.get("/ui/api/live", headers=headers)).status == 401
    good = {"Authorization": "Bearer k-two"}
    checked = await _json(
        await client.post("/ui/api/check", json={"policy": DEFAULT}, headers=good)
    )
    assert checked["ok"] is True
    assert (await client.get("/ui/api/policies", headers=good)).status == 200


# -- check, scan, test: what the command line says ------------------------------------


async def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command line, on a thread of its own: it runs an event loop of its own."""
    code = await asyncio.to_thread(main, list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("edit", "line"),
    [
        (("action: redact", "action: redakt"), 17),  # first rule's action
        (("  - id: secret.anthropic-key", "  - id: secret.anthropic-key\n    colour: red"), 23),
        (("rules:", "rules: ["), 13),  # YAML syntax
        (("match: {detector: email}", "match: {regex: '(unclosed'}"), 76),
    ],
    ids=["bad-value", "unknown-key", "yaml-syntax", "bad-regex"],
)
async def test_check_reports_the_cli_messages_at_their_line(
    ui: TestClient[Any, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: tuple[str, str],
    line: int,
) -> None:
    broken = DEFAULT.replace(*edit, 1)
    assert broken != DEFAULT
    file = tmp_path / "policy.yaml"
    file.write_text(broken)
    code, _, err = await _cli(capsys, "policy", "check", str(file))
    assert code == 1
    result = await _json(await ui.post("/ui/api/check", json={"policy": broken}))
    assert result["ok"] is False
    texts = [p["text"] for p in result["problems"]]
    assert texts == [e.replace(str(file), "policy.yaml") for e in err.splitlines()]
    first = result["problems"][0]
    assert (first["line"], first["level"]) == (line, "error")
    assert first["message"] in first["text"]


async def test_check_says_ok_like_the_cli(
    ui: TestClient[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    file = tmp_path / "policy.yaml"
    file.write_text(DEFAULT)
    _, out, _ = await _cli(capsys, "policy", "check", str(file))
    result = await _json(await ui.post("/ui/api/check", json={"policy": DEFAULT}))
    assert result["summary"] == out.strip().replace(str(file), "policy.yaml")


@pytest.mark.parametrize("policy", ["default", "harm"])
async def test_scan_equals_the_cli_scan(
    ui: TestClient[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str
) -> None:
    text = f"{SECRET_TEXT}. I will kill you. Have a nice day."
    sample = tmp_path / "sample.txt"
    sample.write_text(text)
    path = str(BUNDLED_DIR / f"{policy}.yaml")
    _, out, _ = await _cli(
        capsys, "scan", "--json", "--upstream", "demo", "--policy", path, str(sample)
    )
    cli = json.loads(out)
    body = {"policy": (BUNDLED_DIR / f"{policy}.yaml").read_text(), "text": text}
    result = await _json(await ui.post("/ui/api/scan", json=body))
    assert result["text"] == cli["text"] and result["cut"] == cli["cut"]
    assert [
        (h["rule"], h["start"], h["end"], h["action"], h["reason"]) for h in result["hits"]
    ] == [(h["rule"], h["start"], h["end"], h["action"], h["reason"]) for h in cli["hits"]]
    assert result["rules"]["pii.email"]["kind"] == "pattern"


async def test_test_panel_runs_every_case_like_the_cli(
    ui: TestClient[Any, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = DEFAULT.replace('no_match: ["sk-short", "ask-me-anything"]', 'no_match: ["sk-short"]')
    wrong = wrong.replace(
        'match: ["write to jane.doe@example.com today"]',
        'match: ["write to jane.doe@example.com today", "no email here"]',
    )
    file = tmp_path / "policy.yaml"
    file.write_text(wrong)
    code, out, _ = await _cli(capsys, "policy", "test", str(file))
    assert code == 1
    result = await _json(await ui.post("/ui/api/test", json={"policy": wrong}))
    assert f"{result['passed']} passed, {result['failed']} failed" in out
    failed = [c for c in result["cases"] if not c["passed"]]
    assert [(c["where"], c["case"]) for c in failed] == [
        ("rule 'pii.email'", "should fire on 'no email here'")
    ]
    assert (failed[0]["expected"], failed[0]["got"]) == ("True", "False")


async def test_test_panel_judges_classifier_cases_with_the_demo(ui: TestClient[Any, Any]) -> None:
    result = await _json(await ui.post("/ui/api/test", json={"policy": HARM}))
    assert result["failed"] == 0
    # the output cases are judged by the moderation endpoint, so they ran
    assert sum(c["where"].startswith("test ") for c in result["cases"]) == HARM.count("- direction")


# -- replay ----------------------------------------------------------------------------


async def test_replay_shows_text_held_by_the_rule_then_released(ui: TestClient[Any, Any]) -> None:
    text = "Mail jane.doe@example.com today."
    body = {"policy": DEFAULT, "text": text, "chunking": "char"}
    result = await _json(await ui.post("/ui/api/replay", json=body))
    frames = result["frames"]
    assert len(frames) == len(text) + 1  # one per character, then the end
    at = frames[text.index("@")]
    assert at["released"] == at["held_from"] == text.index("jane")
    assert at["holders"][0] == ["pii.email", text.index("jane")]
    redacted = [f for f in frames if any(p[3] for p in f["pieces"])]
    assert len(redacted) == 1
    assert "".join(p[2] for f in frames for p in f["pieces"]) == "Mail [REDACTED] today."
    shares = result["shares"]
    email = next(r for r in shares["rules"] if r["rule"] == "pii.email")
    assert email["held"] >= len("jane.doe@example.com")
    assert 0 < shares["share_at_once"] < 1


async def test_replay_shows_segments_waiting_for_verdicts_and_the_cut(
    ui: TestClient[Any, Any],
) -> None:
    text = "Hello there. I will kill you. Bye now."
    body = {"policy": HARM, "text": text, "chunking": "words", "lag": 3}
    result = await _json(await ui.post("/ui/api/replay", json=body))
    frames = result["frames"]
    waiting = [f for f in frames if f["waiting"] and f["released"] < f["held_from"]]
    assert waiting and all(set(f["waiting"]) == {"harm.moderation"} for f in waiting)
    assert any(f["asked"] for f in frames)
    last = frames[-1]
    assert last["cut"] and last["released"] == text.index("I will")
    assert "".join(p[2] for f in frames for p in f["pieces"]) == "Hello there. "
    scan = await _json(await ui.post("/ui/api/scan", json={"policy": HARM, "text": text}))
    assert scan["text"] == "Hello there. "


def _no_verdicts(requests: Any) -> list[Future[Verdict]]:
    assert not requests
    return []


_TEXTS = st.lists(
    st.sampled_from(
        ["jane.doe@example.com", " ", "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0fGh3i",
         "4111 1111 1111 1111", "Project Nightingale", "hello", "@", ".", "a", "\n",
         "+1 415 555 0142"]
    ),
    max_size=12,
).map("".join)  # fmt: skip
_COMPILED = load_text(DEFAULT, "default.yaml")


@given(text=_TEXTS, chunking=st.sampled_from(["char", "words", "random"]), seed=st.integers(0, 99))
def test_replay_releases_what_whole_text_moderation_does_and_names_every_hold(
    text: str, chunking: str, seed: int
) -> None:
    config = _COMPILED.config(Direction.OUTPUT)
    frames = replay(config, chunk_text(text, chunking, seed), _no_verdicts, lag=0)
    released = "".join(p.text for f in frames for p in f.pieces) + "".join(f.notice for f in frames)
    assert released == moderate(config, text).text
    for frame in frames:
        assert frame.released <= frame.held_from <= frame.received
        if frame.held_from < frame.received and not frame.cut:
            # the engine holds from where some rule's possible match begins, and says which
            assert frame.holders and frame.holders[0].start == frame.held_from
    assert frames[-1].held_from == frames[-1].received or frames[-1].cut


@given(text=st.text(max_size=300), chunking=st.sampled_from(["char", "words", "random"]))
def test_chunks_rebuild_the_text(text: str, chunking: str) -> None:
    chunks = chunk_text(text, chunking, 7)
    assert "".join(chunks) == text and all(chunks)


def test_holders_name_the_rule_whose_match_may_be_in_progress() -> None:
    matcher = _COMPILED.config(Direction.OUTPUT).enforce
    found = holders(matcher, "mail jane.doe@exam", 5)
    assert found[0].rule_id == "pii.email" and found[0].start == 5
    assert holders(matcher, "nothing to see. ", 0) == ()


# -- bounds, classifiers and privacy --------------------------------------------------


async def test_bounds_are_enforced_with_openai_errors(ui: TestClient[Any, Any]) -> None:
    too_long = {"policy": DEFAULT, "text": "a" * (MAX_REPLAY_CHARS + 1)}
    body = await _json(await ui.post("/ui/api/replay", json=too_long), 400)
    assert body["error"]["param"] == "text"
    huge = json.dumps({"policy": "x" * MAX_BODY_BYTES}).encode()
    body = await _json(await ui.post("/ui/api/check", data=huge), 413)
    assert body["error"]["code"] == "request_too_large"
    for bad in [b"not json", b'{"policy": 3}', b'{"policy": "", "extra": 1}']:
        body = await _json(await ui.post("/ui/api/check", data=bad), 400)
        assert body["error"]["code"] == "invalid_request"
    body = await _json(
        await ui.post("/ui/api/scan", json={"policy": "version: 2", "text": ""}), 400
    )
    assert body["error"]["code"] == "invalid_policy"


async def test_a_pasted_classifier_may_not_call_an_endpoint_no_loaded_policy_names(
    ui: TestClient[Any, Any],
) -> None:
    pasted = HARM.replace(
        "        kind: moderation\n",
        "        kind: moderation\n        url: http://127.0.0.1:9/v1\n        api_key_env: HOME\n",
    )
    checked = await _json(await ui.post("/ui/api/check", json={"policy": pasted}))
    assert checked["ok"] is False
    (problem,) = checked["problems"]
    assert problem["rule"] == "harm.moderation"
    assert problem["line"] == pasted.splitlines().index("    match:") + 1
    scan = await ui.post("/ui/api/scan", json={"policy": pasted, "text": "hello. "})
    assert (await _json(scan, 400))["error"]["code"] == "classifier_unavailable"


async def test_no_user_text_in_logs_or_metrics(
    ui: TestClient[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    for path in ["scan", "replay"]:
        await _json(await ui.post(f"/ui/api/{path}", json={"policy": DEFAULT, "text": SECRET_TEXT}))
    metrics = await (await ui.get("/metrics")).text()
    for secret in ["jane.doe", "sk-proj-Ab3d"]:
        assert secret not in caplog.text and secret not in metrics
    assert 'rule="pii.email"' not in metrics  # the playground's hits are not the gateway's


async def test_live_counts_the_gateways_streams_without_text(ui: TestClient[Any, Any]) -> None:
    client = openai.AsyncOpenAI(base_url=str(ui.make_url("/v1")), api_key="x", max_retries=0)
    reply = {"X-Demo-Reply": json.dumps(f"Sure: {SECRET_TEXT}."), "X-Demo-Chunking": "word"}
    stream = await client.chat.completions.create(
        model="demo-chat",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        extra_headers=reply,
    )
    got = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert "jane.doe" not in got
    response = await ui.get("/ui/api/live")
    raw = await response.text()
    live = json.loads(raw)
    assert live["active_streams"] == 0
    hits = {(r["policy"], r["rule"], r["direction"]): r["hits"] for r in live["rules"]}
    assert hits[("default", "pii.email", "output")] == 1
    assert hits[("default", "secret.openai-key", "output")] == 1
    assert live["window_seconds"] >= 0 and live["series"]
    for secret in ["jane.doe", "sk-proj", "Sure"]:
        assert secret not in raw
    await client.close()
