"""``deploy/kubernetes``: valid against the Kubernetes schemas, and true to the gateway.

The schemas ship inside ``kubernetes-validate`` (no cluster, no network). Beyond the
schemas, the manifests must agree with what the gateway and the image really do: the
probe paths are routes the gateway serves, the port is the image's, every variable is a
setting, the ConfigMap's policy passes ``sluicegate policy check`` and ``test``, and the
grace period covers the drain.
"""

from __future__ import annotations

import copy
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.proxy.app import create_app
from gateway.proxy.server import END_GRACE_SECONDS
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
SCRIPT = Path(sys.executable).with_name("sluicegate")
KUSTOMIZATION = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
RESOURCES: dict[str, dict[str, Any]] = {
    name: yaml.safe_load((DEPLOY / name).read_text()) for name in KUSTOMIZATION["resources"]
}
BY_KIND = {resource["kind"]: resource for resource in RESOURCES.values()}
POD = BY_KIND["Deployment"]["spec"]["template"]
CONTAINER = POD["spec"]["containers"][0]
ENV = {item["name"]: item.get("value") for item in CONTAINER["env"]}
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _dockerfile_env(name: str) -> str:
    found = re.search(rf"\b{name}=(\S+)", DOCKERFILE)
    assert found is not None, name
    return found.group(1)


def test_the_kustomization_lists_every_manifest() -> None:
    manifests = {p.name for p in DEPLOY.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(KUSTOMIZATION["resources"]) == manifests
    assert set(BY_KIND) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_manifest_matches_the_kubernetes_schema(name: str) -> None:
    kubernetes_validate.validate(RESOURCES[name], kubernetes_validate.latest_version(), strict=True)


def test_the_validation_is_real() -> None:
    broken = copy.deepcopy(BY_KIND["Deployment"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["prot"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_probes_and_scrape_use_the_gateway_routes_and_port() -> None:
    port = int(_dockerfile_env("SLUICEGATE_PORT"))
    (named,) = CONTAINER["ports"]
    assert (named["name"], named["containerPort"]) == ("http", port)
    probes = {
        kind: CONTAINER[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert {kind: probe["path"] for kind, probe in probes.items()} == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }
    assert {probe["port"] for probe in probes.values()} == {"http"}
    annotations = POD["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == port
    app = create_app(Settings(_env_file=None, upstream_url="demo"))  # type: ignore[call-arg]
    served = {resource.canonical for resource in app.router.resources()}
    paths = {probe["path"] for probe in probes.values()} | {annotations["prometheus.io/path"]}
    assert paths <= served


def test_every_variable_is_a_gateway_setting() -> None:
    fields = {f"SLUICEGATE_{name.upper()}" for name in Settings.model_fields}
    assert set(ENV) <= fields
    image = set(re.findall(r"\b(SLUICEGATE_[A-Z_]+)=", DOCKERFILE))
    assert image and image <= fields


def test_the_grace_period_covers_the_drain() -> None:
    spec = POD["spec"]
    pre_stop = CONTAINER["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(ENV["SLUICEGATE_DRAIN_SECONDS"])
    assert spec["terminationGracePeriodSeconds"] > pre_stop + drain + 2 * END_GRACE_SECONDS


def test_the_pod_is_locked_down() -> None:
    pod, container = POD["spec"]["securityContext"], CONTAINER["securityContext"]
    assert pod["runAsNonRoot"] and container["runAsNonRoot"]
    assert f"USER {pod['runAsUser']}:{pod['runAsGroup']}" in DOCKERFILE
    assert container["readOnlyRootFilesystem"] is True
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"]["drop"] == ["ALL"]
    assert "limits" in CONTAINER["resources"] and "requests" in CONTAINER["resources"]
    mounts = {m["name"]: m["mountPath"] for m in CONTAINER["volumeMounts"]}
    volumes = {v["name"]: v for v in POD["spec"]["volumes"]}
    assert "emptyDir" in volumes["tmp"] and mounts["tmp"] == "/tmp"  # the metrics files
    policies = _dockerfile_env("SLUICEGATE_POLICY")
    assert mounts["policies"] == ENV["SLUICEGATE_POLICY"] == policies
    assert volumes["policies"]["configMap"]["name"] == BY_KIND["ConfigMap"]["metadata"]["name"]


def test_the_selectors_and_targets_agree() -> None:
    labels = POD["metadata"]["labels"]
    deployment = BY_KIND["Deployment"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert BY_KIND["Service"]["spec"]["selector"].items() <= labels.items()
    assert BY_KIND["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= (
        labels.items()
    )
    assert BY_KIND["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    target = BY_KIND["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


@pytest.mark.parametrize("action", ["check", "test"])
def test_the_configmap_policy_passes_sluicegate_policy(tmp_path: Path, action: str) -> None:
    for key, text in BY_KIND["ConfigMap"]["data"].items():
        (tmp_path / key).write_text(text)  # as the volume mounts it: one file per key
    result = subprocess.run(
        [str(SCRIPT), "policy", action, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""  # no lint warnings either
