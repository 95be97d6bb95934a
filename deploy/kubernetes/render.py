"""Kubernetes manifests for one party's `vfl serve`: render, review, `kubectl apply -f -`.

    python deploy/kubernetes/render.py --config deploy/kubernetes/partner.yaml \
        --tls certs/partner --image registry.partner.example/vfl:0.1.0 \
        --env-secret PARTNER_DB_URL > partner-manifests.yaml

One document each: a ConfigMap with the party YAML (mounted at /etc/vfl), a Secret with the
party's certificate, key and CA certificate (mounted at /etc/vfl-tls, into this party's pods
only), a Secret with the environment values named by --env-secret (read from this command's
environment: database URLs with passwords), a PersistentVolumeClaim for the store (mounted at
/var/lib/vfl), a Deployment, a Service, and a NetworkPolicy that opens only the party port, the
HTTP port (scoring and /v1/metrics) and the metrics port (Prometheus, /v1/ready) to other pods
and peers. The party YAML is the one the pod runs: it listens on all interfaces, and its paths
are the image's (docs/deployment.md). Liveness probes ask the service's Health (`vfl health`);
with a metrics port the readiness probe asks its readiness (`vfl health --ready`: models loaded).
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CONFIG_DIR, TLS_DIR, STATE_DIR = "/etc/vfl", "/etc/vfl-tls", "/var/lib/vfl"
UID = 10001  # the image's user
ALL_INTERFACES = ("0.0.0.0", "::", "[::]")
HEALTH = ["vfl", "health", "--config", f"{CONFIG_DIR}/party.yaml"]
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RenderError(ValueError):
    """Bad input for the manifests; the message names the file, field or option."""


def _port(address: str, where: str, *, all_interfaces: bool = False) -> int:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RenderError(f"{where}: '{address}' is not host:port with a literal port")
    if all_interfaces and host not in ALL_INTERFACES:
        raise RenderError(f"{where}: '{address}' must listen on all interfaces in a pod "
                          f"(0.0.0.0:{port}), or the Service cannot reach it")
    return int(port)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def render(config_path: Path, tls_dir: Path, image: str, *, namespace: str | None = None,
           env_secrets: dict[str, str] | None = None, extra_files: list[Path] | None = None,
           storage: str = "10Gi", cpu: str = "1", memory: str = "4Gi", memory_limit: str = "8Gi",
           peer_cidrs: list[str] | None = None) -> list[dict[str, Any]]:
    """The manifests of the party whose YAML is `config_path` (see the module docstring)."""
    text = config_path.read_text()
    config = yaml.safe_load(text)
    if not isinstance(config, dict) or not isinstance(config.get("name"), str):
        raise RenderError(f"{config_path}: no party `name`")
    party = config["name"]
    ports = {"party": _port(str(config.get("listen", "")), f"{config_path}: listen", all_interfaces=True)}
    http_listen = (config.get("serving") or {}).get("http_listen")
    if http_listen:
        ports["http"] = _port(str(http_listen), f"{config_path}: serving.http_listen")
    metrics_listen = (config.get("metrics") or {}).get("listen")
    if metrics_listen:
        ports["metrics"] = _port(str(metrics_listen), f"{config_path}: metrics.listen", all_interfaces=True)
    ready = [*HEALTH, "--ready"] if metrics_listen else HEALTH
    files = {"ca": "ca.pem", "cert": f"{party}.pem", "key": f"{party}.key"}
    if config.get("tls") != {field: f"{TLS_DIR}/{file}" for field, file in files.items()}:
        raise RenderError(f"{config_path}: tls must be {{ca: {TLS_DIR}/ca.pem, cert: "
                          f"{TLS_DIR}/{party}.pem, key: {TLS_DIR}/{party}.key}} (the Secret's files)")
    tls_data = {}
    for name in files.values():
        try:
            tls_data[name] = _b64((tls_dir / name).read_bytes())
        except OSError as exc:
            raise RenderError(f"--tls {tls_dir}: cannot read {name}: {exc.strerror}") from None
    config_files = {"party.yaml": text}
    for path in extra_files or []:
        if path.name in config_files:
            raise RenderError(f"--file {path}: a second file named {path.name}")
        config_files[path.name] = path.read_text()

    name = f"vfl-{party}"
    labels = {"app.kubernetes.io/name": "vfl", "app.kubernetes.io/instance": name, "vfl/party": party}
    selector = {"app.kubernetes.io/instance": name}

    def meta(suffix: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {"name": name + suffix, "labels": labels}
        if namespace:
            out["namespace"] = namespace
        return out

    docs: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("-config"), "data": config_files},
        {"apiVersion": "v1", "kind": "Secret", "metadata": meta("-tls"), "type": "Opaque",
         "data": tls_data},
        {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta("-store"),
         "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": storage}}}},
    ]
    container: dict[str, Any] = {
        "name": "vfl",
        "image": image,
        "args": ["serve", "--config", f"{CONFIG_DIR}/party.yaml"],
        "ports": [{"name": port_name, "containerPort": port, "protocol": "TCP"}
                  for port_name, port in ports.items()],
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "tls", "mountPath": TLS_DIR, "readOnly": True},
            {"name": "state", "mountPath": STATE_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
        "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}},
        # the party's own certificate calls its own service's Health (`vfl health`), and for
        # readiness its metrics port's /v1/ready (`vfl health --ready`) when it has one
        "startupProbe": {"exec": {"command": HEALTH}, "periodSeconds": 5, "timeoutSeconds": 20,
                         "failureThreshold": 24},
        "readinessProbe": {"exec": {"command": ready}, "periodSeconds": 15, "timeoutSeconds": 20},
        "livenessProbe": {"exec": {"command": HEALTH}, "periodSeconds": 30, "timeoutSeconds": 20,
                          "failureThreshold": 3},
        "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                            "capabilities": {"drop": ["ALL"]}},
    }
    if env_secrets:
        for key in env_secrets:
            if not ENV_NAME.match(key):
                raise RenderError(f"--env-secret {key}: not an environment variable name")
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": meta("-env"), "type": "Opaque",
                     "data": {k: _b64(v.encode()) for k, v in env_secrets.items()}})
        container["envFrom"] = [{"secretRef": {"name": f"{name}-env"}}]
    docs.append({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta(),
        "spec": {
            # one replica: a running job's messages live in its service's memory, and the store
            # volume is ReadWriteOnce; Recreate lets the new pod mount it after the old one stops
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": UID, "runAsGroup": UID,
                                        "fsGroup": UID, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [container],
                    "volumes": [
                        {"name": "config", "configMap": {"name": f"{name}-config"}},
                        {"name": "tls", "secret": {"secretName": f"{name}-tls", "defaultMode": 0o440}},
                        {"name": "state", "persistentVolumeClaim": {"claimName": f"{name}-store"}},
                        {"name": "tmp", "emptyDir": {}},
                    ],
                },
            },
        },
    })
    docs.append({
        "apiVersion": "v1", "kind": "Service", "metadata": meta(),
        "spec": {"selector": selector,
                 "ports": [{"name": port_name, "port": port, "targetPort": port_name, "protocol": "TCP"}
                           for port_name, port in ports.items()]},
    })
    ingress: dict[str, Any] = {"ports": [{"port": port, "protocol": "TCP"} for port in ports.values()]}
    if peer_cidrs:
        ingress["from"] = [{"ipBlock": {"cidr": cidr}} for cidr in peer_cidrs]
    docs.append({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": meta(),
        "spec": {"podSelector": {"matchLabels": selector}, "policyTypes": ["Ingress"],
                 "ingress": [ingress]},
    })
    return docs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the party YAML the pod runs")
    parser.add_argument("--tls", type=Path, required=True,
                        help="folder with ca.pem, <party>.pem and <party>.key")
    parser.add_argument("--image", required=True, help="the vfl image, e.g. registry.example/vfl:0.1.0")
    parser.add_argument("--namespace", default=None)
    parser.add_argument("--env-secret", action="append", default=[], metavar="NAME",
                        help="an environment variable of the service, stored in a Secret; its "
                             "value is read from this command's environment (repeatable)")
    parser.add_argument("--file", action="append", default=[], type=Path, dest="files",
                        help="another file for /etc/vfl, e.g. the guest's job YAML (repeatable)")
    parser.add_argument("--storage", default="10Gi", help="size of the store volume")
    parser.add_argument("--cpu", default="1", help="CPU request")
    parser.add_argument("--memory", default="4Gi", help="memory request")
    parser.add_argument("--memory-limit", default="8Gi")
    parser.add_argument("--peer-cidr", action="append", default=[], dest="peer_cidrs",
                        help="only these networks may connect (repeatable; default: any)")
    args = parser.parse_args(argv)
    missing = [name for name in args.env_secret if name not in os.environ]
    if missing:
        parser.error(f"--env-secret: {missing} not set in the environment")
    try:
        docs = render(args.config, args.tls, args.image, namespace=args.namespace,
                      env_secrets={name: os.environ[name] for name in args.env_secret},
                      extra_files=args.files, storage=args.storage, cpu=args.cpu,
                      memory=args.memory, memory_limit=args.memory_limit,
                      peer_cidrs=args.peer_cidrs)
    except (RenderError, OSError) as exc:
        print(f"render: error: {exc}", file=sys.stderr)
        return 2
    yaml.safe_dump_all(docs, sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
