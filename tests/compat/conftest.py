"""Fixtures of the compatibility suite: the clients' own environments and a gateway to stream to.

Every client is installed by the suite itself, from the exact pins in ``clients/``, into a
directory pytest makes fresh for each run (nothing cached but pip's and npm's own download
caches). Python clients share one virtualenv where their pins agree; LlamaIndex needs
``openai<3`` while the others need ``openai>=3``, so it gets a second one. The three
installs run at the same time. The gateway and the demo upstream are the e2e suite's,
served on loopback in this process, in front of the bundled default policy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.policy import DEFAULT_POLICY
from tests.e2e.conftest import Stack, e2e_settings, run_stack

CLIENTS = Path(__file__).parent / "clients"
INSTALL_TIMEOUT = 480.0
NOTICE = " [This answer was stopped by the content policy.]"
NOTICE_POLICY = "default-notice"


@dataclass(frozen=True)
class Envs:
    """Where each client environment lives; ``None`` where it could not be had here."""

    pythons: dict[str, Path]
    node_dir: Path | None
    node_missing: str


def _python_env(root: Path, requirements: Path) -> Path:
    venv.EnvBuilder(with_pip=True, clear=True).create(root)
    python = root / "bin" / "python"
    _install([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)])
    return python


def _node_env(root: Path) -> Path:
    root.mkdir()
    for file in [CLIENTS / "package.json", CLIENTS / "package-lock.json", *CLIENTS.glob("*.mjs")]:
        shutil.copy(file, root)  # ESM resolves packages beside the script, so it runs from here
    _install(["npm", "ci", "--no-audit", "--no-fund"], cwd=root)
    return root


def _install(command: list[str], cwd: Path | None = None) -> None:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False
    )
    if done.returncode != 0:
        raise InstallError(" ".join(command[-3:]), done.stderr[-3000:])


class InstallError(Exception):
    def __init__(self, what: str, stderr: str) -> None:
        super().__init__(f"{what} failed:\n{stderr}")


def _registries_unreachable() -> str | None:
    """Why the registries cannot be reached, or None: a failed install then is a real failure."""
    probes = [[sys.executable, "-m", "pip", "index", "versions", "openai"]]
    if shutil.which("npm"):
        probes.append(["npm", "view", "ai", "version"])
    for probe in probes:
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)
        except subprocess.TimeoutExpired:
            return f"{probe[0]} timed out reaching its registry"
        if done.returncode != 0:
            return f"{' '.join(probe)}: {done.stderr.strip()[-300:]}"
    return None


@pytest.fixture(scope="session")
def client_envs(tmp_path_factory: pytest.TempPathFactory) -> Envs:
    build = tmp_path_factory.mktemp("compat-clients")
    node_missing = "" if shutil.which("node") and shutil.which("npm") else "node and npm needed"
    with ThreadPoolExecutor(max_workers=3) as pool:
        pythons = {
            name: pool.submit(_python_env, build / name, CLIENTS / f"requirements-{name}.txt")
            for name in ("openai3", "llamaindex")
        }
        node = None if node_missing else pool.submit(_node_env, build / "node")
        try:
            envs = Envs(
                {name: future.result() for name, future in pythons.items()},
                node.result() if node else None,
                node_missing,
            )
        except InstallError:
            reason = _registries_unreachable()
            if reason:
                pytest.skip(f"package registries unreachable, clients not installed: {reason}")
            raise
    return envs


def _compat_policies(root: Path) -> Path:
    """The bundled default policy, and the same rules with a cutoff notice.

    Derived from the bundled file at run time, so the suite tests what users get and a
    change to the default policy cannot leave a stale copy behind.
    """
    root.mkdir()
    shutil.copy(DEFAULT_POLICY, root / "default.yaml")
    data: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
    data["name"] = NOTICE_POLICY
    data["settings"]["cutoff_notice"] = NOTICE
    (root / f"{NOTICE_POLICY}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root


@pytest.fixture(scope="session")
def compat_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    policies = _compat_policies(tmp_path_factory.mktemp("compat-policies") / "policies")
    yield from run_stack(
        lambda upstream: e2e_settings(upstream, policy=policies, default_policy="default")
    )


def client_environ() -> dict[str, str]:
    """This process's environment, less what could send a client elsewhere than the gateway."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LANGCHAIN_"))}
    env |= {
        "PYTHONDONTWRITEBYTECODE": "1",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # else LiteLLM fetches its price list at import
        "OPENAI_AGENTS_DISABLE_TRACING": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    return env
