"""The installed path: a wheel built from the source, installed into a fresh venv, run
from a directory that is not a checkout.

An editable install finds everything in the source tree, so it hides a file the wheel
does not ship (the bundled policies were one). Here nothing of the checkout is on the
path: the wheel is built from a copy of exactly what the Docker builder gets
(``pyproject.toml``, ``README.md``, ``gateway/``), and its dependencies come from PyPI.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from openai import OpenAI

from gateway.demo.scripts import TOUR

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BUILD_CONTEXT = ["pyproject.toml", "README.md", "gateway"]
PIP = [sys.executable, "-m", "pip", "--disable-pip-version-check"]

# What the bundled default policy does to the demo's answer to "hi" (gateway/demo/scripts.py).
EMAIL = "dana.reyes@example.com"
OPENAI_KEY = "sk-proj-Qx7mV2pLk9Rt4Wz8Nb3Hc6Jd"
CARD = "4111 1111 1111 1111"
BANNED = "Project Nightingale"


@dataclass(frozen=True)
class Installed:
    wheel: Path
    bin: Path
    site_packages: Path


def _run(*command: str | Path, env: dict[str, str] | None = None) -> str:
    """Run to completion; fail with its stderr unless it exits 0. Returns its stdout."""
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, f"{command}: exit {result.returncode}\n{result.stderr}"
    return result.stdout


def _clean_env() -> dict[str, str]:
    """This process's environment without sluicegate settings or a path into the checkout."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("SLUICEGATE_") and k not in {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV"}
    }


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Build the wheel (build isolation: setuptools from PyPI) and install it in a new venv.

    The build runs on a copy so that setuptools' ``build/`` never lands in the work tree.
    The venv has no pip of its own (that saves ensurepip's seconds): this pip installs
    into it with ``--python``, and reuses its cache.
    """
    base = tmp_path_factory.mktemp("packaging")
    source = base / "source"
    source.mkdir()
    for name in BUILD_CONTEXT:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    wheels = base / "wheels"
    _run(*PIP, "wheel", "-q", "--no-deps", "-w", wheels, source)
    (wheel,) = wheels.glob("sluicegate-*.whl")

    venv = base / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv)
    python = venv / "bin" / "python"
    _run(*PIP, "--python", python, "install", "-q", "--no-compile", wheel, env=_clean_env())
    site_packages = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))")
    return Installed(wheel=wheel, bin=venv / "bin", site_packages=Path(site_packages.strip()))


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """An empty working directory: no policies/, no .env, no checkout."""
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    return empty


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"sluicegate exited {process.returncode}:\n{log.read_text()}")
        try:
            with opener.open(url, timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    pytest.fail(f"{url} not 200 within {timeout:.0f}s; sluicegate's output:\n{log.read_text()}")


@pytest.fixture
def server(installed: Installed, elsewhere: Path, tmp_path: Path) -> Iterator[int]:
    yield from _serve(installed, elsewhere, tmp_path)


def _serve(installed: Installed, cwd: Path, tmp_path: Path, *more: str) -> Iterator[int]:
    port = _free_port()
    log = tmp_path / "sluicegate.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                installed.bin / "sluicegate",
                "serve",
                "--upstream",
                "demo",
                "--port",
                str(port),
                *more,
            ],
            cwd=cwd,
            env=_clean_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_ready(f"http://127.0.0.1:{port}/readyz", process, log, timeout=30)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_installed_gateway_moderates_a_stream_with_the_bundled_default_policy(
    server: int,
) -> None:
    for raw in (EMAIL, OPENAI_KEY, CARD, BANNED):
        assert TOUR.count(raw) == 1, f"the demo answer no longer contains {raw!r}"
    client = OpenAI(base_url=f"http://127.0.0.1:{server}/v1", api_key="x", max_retries=0)
    stream = client.chat.completions.create(
        model="demo-chat", messages=[{"role": "user", "content": "hi"}], stream=True, timeout=30
    )
    text, finish_reasons = "", []
    for chunk in stream:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            if choice.finish_reason is not None:
                finish_reasons.append(choice.finish_reason)

    expected = (
        TOUR[: TOUR.index(BANNED)]
        .replace(EMAIL, "[REDACTED]")
        .replace(OPENAI_KEY, "[REDACTED:secret.openai-key]")
        .replace(CARD, "[REDACTED]")
    )
    assert text == expected
    for raw in (EMAIL, OPENAI_KEY, CARD, "Nightingale"):
        assert raw not in text
    assert finish_reasons == ["content_filter"]


@pytest.mark.parametrize(
    ("action", "says"),
    [("test", ", 0 failed"), ("check", "policy 'default' ok")],
    ids=["policy-test", "policy-check"],
)
def test_installed_cli_checks_the_bundled_policies_without_a_path(
    installed: Installed, elsewhere: Path, action: str, says: str
) -> None:
    result = subprocess.run(
        [installed.bin / "sluicegate", "policy", action],
        cwd=elsewhere,
        env=_clean_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    bundled = installed.site_packages / "gateway" / "policies"
    assert f"{bundled / 'default.yaml'}" in result.stdout
    assert str(ROOT) not in result.stdout
    assert says in result.stdout


def test_wheel_ships_the_policies_inside_the_package(installed: Installed) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = set(wheel.namelist())
        top_level = wheel.read(
            next(n for n in names if n.endswith(".dist-info/top_level.txt"))
        ).decode()
    shipped = {f"gateway/policies/{p.name}" for p in (ROOT / "gateway" / "policies").iterdir()}
    assert {"gateway/policies/default.yaml", "gateway/policies/schema.json"} <= shipped <= names
    assert not [n for n in names if n.startswith("policies/")]
    assert top_level.split() == ["gateway"]


def test_checkout_policies_are_a_link_to_the_package_data() -> None:
    """``policies/`` in a checkout (README paths, ``policy schema > policies/schema.json``)
    is the package's directory, not a copy that could drift from what the wheel ships."""
    link = ROOT / "policies"
    assert link.is_symlink()
    assert link.resolve() == (ROOT / "gateway" / "policies").resolve()


def test_installed_gateway_serves_the_playground_files_it_ships(
    installed: Installed, elsewhere: Path, tmp_path: Path
) -> None:
    """``serve --ui`` from the wheel: the page, its files and samples, byte for byte."""
    static = ROOT / "gateway" / "ui" / "static"
    shipped = {f"gateway/ui/static/{p.name}" for p in static.iterdir()} | {
        "gateway/ui/samples.json"
    }
    with zipfile.ZipFile(installed.wheel) as wheel:
        assert shipped <= set(wheel.namelist())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for port in _serve(installed, elsewhere, tmp_path, "--ui"):
        base = f"http://127.0.0.1:{port}"
        with opener.open(f"{base}/ui/index.html", timeout=10) as page:
            assert page.read() == (static / "index.html").read_bytes()
        for name in ("app.js", "style.css"):
            with opener.open(f"{base}/ui/static/{name}", timeout=10) as response:
                assert response.read() == (static / name).read_bytes()
        with opener.open(f"{base}/ui/api/samples", timeout=10) as response:
            assert b"Secrets and PII" in response.read()
