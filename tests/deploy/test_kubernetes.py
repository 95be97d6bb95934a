"""deploy/kubernetes: the manifests of a bank and a partner, rendered by render.py from the
party YAMLs beside it and real certificates, pass the Kubernetes schemas (offline, strict: an
unknown field is an error); each party's Secrets are mounted only into its own pods.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from vfl.crypto.tls import create_ca, issue_party_cert
from vfl.parties.config import PartyConfig, parse

pytestmark = pytest.mark.deploy

REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.30.0"
PORTS = {"bank": {7101, 7180, 9464}, "partner": {7102, 9464}}
ENV = {"bank": "BANK_DB_URL", "partner": "PARTNER_DB_URL"}


def render(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(KUBE / "render.py"), *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("certs")
    create_ca(root / "ca")
    for party in PORTS:
        issue_party_cert(root / "ca", party, root / party)
        (root / party / "ca.pem").write_bytes((root / "ca" / "ca.pem").read_bytes())
    return root


@pytest.fixture(scope="module")
def manifests(certs) -> dict[str, list[dict[str, Any]]]:
    """Both parties' documents, rendered into one namespace (names must not collide)."""
    out = {}
    for party in PORTS:
        extra = ["--file", str(KUBE / "job.yaml")] if party == "bank" else []
        done = render("--config", str(KUBE / f"{party}.yaml"), "--tls", str(certs / party),
                      "--image", "registry.example/vfl:0.1.0", "--namespace", "federation",
                      "--env-secret", ENV[party], *extra,
                      env={ENV[party]: f"mysql+pymysql://{party}:s3cret@db.{party}/{party}"})
        assert done.returncode == 0, done.stderr
        out[party] = list(yaml.safe_load_all(done.stdout))
    return out


def _all(manifests) -> list[dict[str, Any]]:
    return [doc for docs in manifests.values() for doc in docs]


def test_every_manifest_passes_the_kubernetes_schema_strictly(manifests):
    kinds = {party: sorted(doc["kind"] for doc in docs) for party, docs in manifests.items()}
    expected = sorted(["ConfigMap", "Secret", "Secret", "PersistentVolumeClaim", "Deployment",
                       "Service", "NetworkPolicy"])
    assert kinds == {"bank": expected, "partner": expected}
    for doc in _all(manifests):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    names = [(doc["kind"], doc["metadata"]["name"]) for doc in _all(manifests)]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("typo", ["containerPort", "readinessProbe", "claimName"])
def test_a_typo_in_a_manifest_fails_validation(manifests, typo):
    deployment = next(d for d in manifests["bank"] if d["kind"] == "Deployment")
    text = yaml.safe_dump(deployment).replace(f"{typo}:", f"{typo[:-1]}:")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(yaml.safe_load(text), KUBERNETES_VERSION, strict=True)


def _secrets_used(pod: dict[str, Any]) -> set[str]:
    """Every Secret a pod spec mounts or reads (volumes, projected volumes, env, envFrom)."""
    used = set()
    for volume in pod.get("volumes", []):
        if "secret" in volume:
            used.add(volume["secret"]["secretName"])
        for source in volume.get("projected", {}).get("sources", []):
            if "secret" in source:
                used.add(source["secret"]["name"])
    for container in pod.get("containers", []) + pod.get("initContainers", []):
        for source in container.get("envFrom", []):
            if "secretRef" in source:
                used.add(source["secretRef"]["name"])
        for env in container.get("env", []):
            ref = env.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                used.add(ref["name"])
    return used


def test_each_partys_secrets_are_mounted_only_into_its_own_pods(manifests, certs):
    secrets = {doc["metadata"]["name"]: doc["metadata"]["labels"]["vfl/party"]
               for doc in _all(manifests) if doc["kind"] == "Secret"}
    mounted_by: dict[str, set[str]] = {name: set() for name in secrets}
    for doc in _all(manifests):
        if doc["kind"] != "Deployment":
            continue
        template = doc["spec"]["template"]
        party = template["metadata"]["labels"]["vfl/party"]
        selector = doc["spec"]["selector"]["matchLabels"]
        assert selector.items() <= template["metadata"]["labels"].items()
        for name in _secrets_used(template["spec"]):
            assert name in secrets, f"{party}'s pods use a Secret that was not rendered: {name}"
            mounted_by[name].add(party)
    assert mounted_by == {name: {owner} for name, owner in secrets.items()}

    for party, docs in manifests.items():  # and each Secret holds only its own party's files
        tls = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-tls"))
        assert set(tls["data"]) == {"ca.pem", f"{party}.pem", f"{party}.key"}
        assert base64.b64decode(tls["data"][f"{party}.key"]) == (certs / party / f"{party}.key").read_bytes()
        env = next(d for d in docs if d["kind"] == "Secret" and d["metadata"]["name"].endswith("-env"))
        assert set(env["data"]) == {ENV[party]}


def test_the_pods_run_the_party_yaml_as_non_root_with_probes_resources_and_a_narrow_network_policy(
        manifests):
    for party, docs in manifests.items():
        by_kind = {doc["kind"]: doc for doc in docs}
        config = by_kind["ConfigMap"]["data"]
        parse(PartyConfig, yaml.safe_load(config["party.yaml"]), f"{party} ConfigMap")
        assert config["party.yaml"] == (KUBE / f"{party}.yaml").read_text()  # not expanded
        assert ("job.yaml" in config) == (party == "bank")
        pod = by_kind["Deployment"]["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
        (container,) = pod["containers"]
        assert container["args"] == ["serve", "--config", "/etc/vfl/party.yaml"]
        for probe in ("startupProbe", "livenessProbe"):
            assert container[probe]["exec"]["command"][1:] == ["health", "--config", "/etc/vfl/party.yaml"]
        # readiness: the models loaded, asked on the metrics port (liveness stays the Health RPC)
        assert container["readinessProbe"]["exec"]["command"][1:] == [
            "health", "--config", "/etc/vfl/party.yaml", "--ready"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert container["securityContext"]["readOnlyRootFilesystem"]
        assert {p["containerPort"] for p in container["ports"]} == PORTS[party]
        assert {p["port"] for p in by_kind["Service"]["spec"]["ports"]} == PORTS[party]
        policy = by_kind["NetworkPolicy"]["spec"]
        assert policy["policyTypes"] == ["Ingress"]
        assert {p["port"] for rule in policy["ingress"] for p in rule["ports"]} == PORTS[party]
        assert policy["podSelector"]["matchLabels"] == by_kind["Deployment"]["spec"]["selector"]["matchLabels"]


def test_peer_networks_narrow_the_network_policy(certs):
    done = render("--config", str(KUBE / "partner.yaml"), "--tls", str(certs / "partner"),
                  "--image", "vfl:1", "--peer-cidr", "203.0.113.0/24")
    assert done.returncode == 0, done.stderr
    policy = next(d for d in yaml.safe_load_all(done.stdout) if d["kind"] == "NetworkPolicy")
    kubernetes_validate.validate(policy, KUBERNETES_VERSION, strict=True)
    assert policy["spec"]["ingress"][0]["from"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]


def test_bad_input_is_refused_naming_the_field(certs, tmp_path):
    loopback = tmp_path / "partner.yaml"
    loopback.write_text((KUBE / "partner.yaml").read_text().replace("0.0.0.0:7102", "127.0.0.1:7102"))
    done = render("--config", str(loopback), "--tls", str(certs / "partner"), "--image", "vfl:1")
    assert done.returncode == 2 and f"{loopback}: listen" in done.stderr and "all interfaces" in done.stderr
    done = render("--config", str(KUBE / "partner.yaml"), "--tls", str(certs / "bank"), "--image", "vfl:1")
    assert done.returncode == 2 and "cannot read partner.pem" in done.stderr
    done = render("--config", str(KUBE / "partner.yaml"), "--tls", str(certs / "partner"),
                  "--image", "vfl:1", "--env-secret", "VFL_TEST_UNSET_VARIABLE")
    assert done.returncode == 2 and "VFL_TEST_UNSET_VARIABLE" in done.stderr


def test_without_a_metrics_port_readiness_is_the_health_check_and_the_port_must_be_reachable(certs, tmp_path):
    config = yaml.safe_load((KUBE / "partner.yaml").read_text())
    del config["metrics"]
    (tmp_path / "partner.yaml").write_text(yaml.safe_dump(config))
    done = render("--config", str(tmp_path / "partner.yaml"), "--tls", str(certs / "partner"), "--image", "vfl:1")
    assert done.returncode == 0, done.stderr
    pod = next(d for d in yaml.safe_load_all(done.stdout) if d["kind"] == "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["exec"]["command"][1:] == ["health", "--config", "/etc/vfl/party.yaml"]
    assert {p["containerPort"] for p in container["ports"]} == {7102}

    config["metrics"] = {"listen": "127.0.0.1:9464"}
    (tmp_path / "partner.yaml").write_text(yaml.safe_dump(config))
    done = render("--config", str(tmp_path / "partner.yaml"), "--tls", str(certs / "partner"), "--image", "vfl:1")
    assert done.returncode != 0
    assert "metrics.listen: '127.0.0.1:9464' must listen on all interfaces" in done.stderr
