"""The Helm chart, rendered by the real helm and checked against the Kubernetes schemas."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.kube_parts import CHART, by_kind, helm, objects, render, validate

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "follow-off": {"falcoctl": {"artifact": {"follow": {"enabled": False}}}},
    "install-off": {"falcoctl": {"artifact": {"install": {"enabled": False}}}},
    "http-output": {"falco": {"json_output": True, "http_output": {
        "enabled": True, "url": "http://falcosidekick:2801/"}}},
    "custom-indexes": {"falcoctl": {"config": {"indexes": [
        {"name": "mine", "url": "https://example.org/index.yaml"},
        {"name": "local", "url": "file:///srv/index.yaml", "backend": "file"}]}}},
    "private-registry": {"falcoctl": {"registryCredentials": {"existingSecret": "regcred"}},
                         "imagePullSecrets": ["regcred"]},
    "no-driver-monitor": {"driver": {"enabled": False}, "serviceMonitor": {"create": True},
                          "extra": {"env": [{"name": "X", "value": "1"}], "args": ["-o", "a=b"]}},
}


def _pod(objs: list[dict[str, Any]]) -> dict[str, Any]:
    ds = by_kind(objs, "DaemonSet")
    assert len(ds) == 1
    spec: dict[str, Any] = ds[0]["spec"]["template"]["spec"]
    return spec


def _names(items: list[dict[str, Any]] | None) -> list[str]:
    return [c["name"] for c in items or []]


def _config(objs: list[dict[str, Any]], key: str) -> dict[str, Any]:
    for cm in by_kind(objs, "ConfigMap"):
        if key in cm["data"]:
            data: dict[str, Any] = yaml.safe_load(cm["data"][key])
            return data
    raise AssertionError(f"no ConfigMap holds {key}")


def test_helm_lint_passes() -> None:
    proc = helm("lint", "--strict", str(CHART))
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_every_rendered_object_is_valid_kubernetes(variant: str) -> None:
    objs = objects(VARIANTS[variant])
    assert objs
    for obj in objs:
        if obj["kind"] == "ServiceMonitor":  # a CRD: not in the core schemas
            assert obj["apiVersion"] == "monitoring.coreos.com/v1"
            continue
        validate(obj)


def test_default_pod_has_the_three_roles_and_the_host_mounts() -> None:
    objs = objects()
    pod = _pod(objs)
    assert _names(pod["initContainers"]) == ["driver-loader", "falcoctl-artifact-install"]
    assert _names(pod["containers"]) == ["detector", "falcoctl-artifact-follow"]
    assert pod["hostPID"] is True
    detector = pod["containers"][0]
    assert detector["securityContext"]["privileged"] is True
    mounts = {m["mountPath"]: m for m in detector["volumeMounts"]}
    for path in ("/host/proc", "/sys/kernel/btf", "/sys/kernel/tracing", "/lib/modules",
                 "/usr/src", "/host/etc", "/run/containerd/containerd.sock", "/etc/falco"):
        assert path in mounts, path
    assert mounts["/host/etc"]["readOnly"] is True
    assert detector["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert detector["livenessProbe"]["httpGet"]["port"] == "web"
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["rulesfiles-install-dir"]
    assert {"operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    install, follow = pod["initContainers"][1], pod["containers"][1]
    assert "falcoctl-py artifact install" in install["args"][0]
    assert follow["args"] == ["artifact", "follow"]
    shared = {m["name"] for m in install["volumeMounts"]}
    shared &= {m["name"] for m in follow["volumeMounts"]}
    assert {"rulesfiles-install-dir", "artifact-state-dir", "falcoctl-config"} <= shared
    assert {o["kind"] for o in objs} >= {"ServiceAccount", "Role", "RoleBinding", "Service",
                                         "ConfigMap", "DaemonSet"}


def test_values_are_rendered_into_falco_yaml_and_falcoctl_yaml() -> None:
    objs = objects(VARIANTS["http-output"])
    falco = _config(objs, "falco.yaml")
    assert falco["http_output"]["url"] == "http://falcosidekick:2801/"
    assert falco["json_output"] is True
    assert falco["webserver"]["k8s_healthz_endpoint"] == "/healthz"
    falcoctl = _config(objs, "falcoctl.yaml")
    assert falcoctl["artifact"]["install"]["refs"] == ["falco-rules:5"]
    assert falcoctl["artifact"]["follow"]["every"] == "6h"
    custom = _config(objects(VARIANTS["custom-indexes"]), "falcoctl.yaml")
    assert [i["name"] for i in custom["indexes"]] == ["mine", "local"]


def test_follow_off_and_install_off_drop_their_containers() -> None:
    follow_off = _pod(objects(VARIANTS["follow-off"]))
    assert "falcoctl-artifact-follow" not in _names(follow_off["containers"])
    pod = _pod(objects(VARIANTS["install-off"]))
    assert "falcoctl-artifact-install" not in _names(pod.get("initContainers"))
    assert "falcoctl-artifact-follow" in _names(pod["containers"])


def test_private_registry_credentials_come_from_the_secret() -> None:
    objs = objects(VARIANTS["private-registry"])
    pod = _pod(objs)
    secret = next(v for v in pod["volumes"] if v["name"] == "registry-credentials")
    assert secret["secret"]["secretName"] == "regcred"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    for container in (pod["initContainers"][1], pod["containers"][1]):
        assert any(m["name"] == "registry-credentials" and m["readOnly"]
                   for m in container["volumeMounts"])
    falcoctl = _config(objs, "falcoctl.yaml")
    assert falcoctl["registry"]["creds"]["config"] == "/etc/falcoctl-creds/config.json"
    rendered = render(VARIANTS["private-registry"]).stdout
    assert "password" not in rendered.lower()


def test_no_driver_runs_plugins_only_without_host_kernel_mounts() -> None:
    objs = objects(VARIANTS["no-driver-monitor"])
    assert _config(objs, "falco.yaml")["engine"]["kind"] == "nodriver"
    pod = _pod(objs)
    assert "driver-loader" not in _names(pod["initContainers"])
    assert "/usr/src" not in {m["mountPath"] for m in pod["containers"][0]["volumeMounts"]}
    assert by_kind(objs, "ServiceMonitor")


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"falco": {"priority": "loud"}}, "/falco/priority"),
        ({"falcoctl": {"config": {"artifact": {"follow": {"every": "often"}}}}},
         "/falcoctl/config/artifact/follow/every"),
        ({"falcoctl": {"artifact": {"install": {"enabled": "yes"}}}},
         "/falcoctl/artifact/install/enabled"),
        ({"falco": {"webserver": {"listen_port": 70000}}}, "/falco/webserver/listen_port"),
        ({"falco": {"http_output": {"enabled": True, "url": ""}}}, "/falco/http_output/url"),
        ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
        ({"falcoctl": {"config": {"indexes": [{"name": "x"}]}}}, "/falcoctl/config/indexes/0"),
        ({"tolerations": {"key": "x"}}, "/tolerations"),
        ({"imagePullSecret": ["x"]}, "imagePullSecret"),
    ],
)
def test_wrong_values_are_refused_with_the_key_named(values: dict[str, Any], key: str) -> None:
    proc = render(values, check=False)
    assert proc.returncode != 0
    assert "schema" in proc.stderr and key in proc.stderr, proc.stderr


def test_notes_say_how_to_see_the_alerts() -> None:
    proc = helm("install", "fpy", str(CHART), "--dry-run=client", "--namespace", "falco")
    notes = proc.stdout[proc.stdout.index("NOTES:"):]
    assert ("kubectl logs -n falco -l app.kubernetes.io/name=falcoctl-py -c detector"
            " | grep Notice") in notes
    assert "kubectl exec -it alpine -- sh -c uptime" in notes
