"""The Kubernetes manifests in deploy/: they hold together, and they serve a valid ruleset as non-root."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from decision.cli.main import EXAMPLES, build_parser
from decision.rules.compiler import compile_ruleset
from decision.rules.loader import load_file

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


def documents() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        if path.name in ("kustomization.yaml", "rules.yaml"):
            continue
        for document in yaml.safe_load_all(path.read_text()):
            found[f"{document['kind']}/{document['metadata']['name']}"] = document
    return found


def test_the_configmap_ruleset_is_valid() -> None:
    compile_ruleset(load_file(DEPLOY / "rules.yaml"))


def test_the_deployment_serves_the_configmap_with_grpc_probes_as_the_image_user() -> None:
    manifests = documents()
    assert {"Deployment/decision", "Service/decision", "HorizontalPodAutoscaler/decision"} <= set(manifests)
    assert "PodDisruptionBudget/decision" in manifests
    pod = manifests["Deployment/decision"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    rules_arg = container["args"][container["args"].index("--rules") + 1]
    rules_volume = next(name for name, path in mounts.items() if rules_arg.startswith(path + "/"))
    assert volumes[rules_volume]["configMap"]["name"] == "decision-rules"
    port = int(container["args"][container["args"].index("--port") + 1])
    assert {p["containerPort"] for p in container["ports"] if p["name"] == "grpc"} == {port}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] == port
    assert container["readinessProbe"]["grpc"]["service"] == "decision.v1.DecisionService"
    uid = re.search(r"useradd .*--uid (\d+)", (ROOT / "Dockerfile").read_text())
    assert uid and pod["securityContext"]["runAsUser"] == int(uid.group(1))
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_kubernetes_waits_for_the_drain_and_the_grace_before_killing() -> None:
    """terminationGracePeriodSeconds covers a preStop pause, --drain and --grace, with a margin: no SIGKILL mid-call."""
    pod = documents()["Deployment/decision"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    args = build_parser().parse_args(container["args"])  # the server's own defaults where not given
    pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
    pause = float(pre_stop[1]) if pre_stop[:1] == ["sleep"] else 0.0
    assert args.drain >= 3  # endpoints are removed asynchronously: a few seconds for them to stop sending
    assert pod["terminationGracePeriodSeconds"] >= pause + args.drain + args.grace + 5


def test_kustomize_renders_the_manifests_with_a_hashed_configmap() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed")
    rendered = list(
        yaml.safe_load_all(
            subprocess.run([kubectl, "kustomize", str(DEPLOY)], capture_output=True, text=True, check=True).stdout
        )
    )
    (configmap,) = [d for d in rendered if d["kind"] == "ConfigMap"]
    assert configmap["metadata"]["name"].startswith("decision-rules-")  # a content hash: rules changes roll the pods
    (deployment,) = [d for d in rendered if d["kind"] == "Deployment"]
    names = [v["configMap"]["name"] for v in deployment["spec"]["template"]["spec"]["volumes"] if "configMap" in v]
    assert names == [configmap["metadata"]["name"]]
    selector = deployment["spec"]["selector"]["matchLabels"]
    for kind in ("Service", "PodDisruptionBudget"):
        for document in (d for d in rendered if d["kind"] == kind):
            chosen = document["spec"].get("selector", {})
            assert chosen.get("matchLabels", chosen) == selector, document["metadata"]["name"]


def test_the_wheel_carries_the_demo_examples_where_the_demo_looks(tmp_path: Path) -> None:
    """`decision demo` reads decision/examples from the installed package: a wheel (the Docker image) must hold it."""
    assert (EXAMPLES / "retail" / "rules.yaml").is_file()
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)]
    subprocess.run(
        [*build, str(ROOT)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    relative = EXAMPLES.relative_to(ROOT.joinpath("decision").parent)
    for sample in ("retail/rules.yaml", "retail/audiences.csv", "retail/requests.yaml", "personalized/rules.yaml"):
        assert f"{relative.as_posix()}/{sample}" in names
