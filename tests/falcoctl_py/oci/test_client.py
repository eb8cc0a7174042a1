"""The OCI client against a real docker-registry: blobs, manifests, tags, auth, TLS, faults."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from falcoctl_py.errors import IntegrityError, NetworkError, NotFoundError, UsageError
from falcoctl_py.oci.client import (
    RegistryClient,
    RegistryCredentials,
    parse_challenge,
    sha256_digest,
)
from falcoctl_py.oci.media import OCI_MANIFEST, Descriptor, build_manifest
from tests.falcoctl_py.artifact_helpers import Fault, FaultProxy, blob_path, make_ca
from tests.realparts import Registry, free_port, running_registry


def _push_small(client: RegistryClient, repo: str, tag: str, payload: bytes) -> str:
    config = b"{}"
    cfg = Descriptor(
        "application/vnd.cncf.falco.asset.config.v1+json",
        client.push_blob(repo, config),
        len(config),
    )
    layer = Descriptor(
        "application/vnd.cncf.falco.asset.layer.v1+tar.gz",
        client.push_blob(repo, payload),
        len(payload),
    )
    return client.push_manifest(repo, tag, build_manifest(cfg, layer, {}), OCI_MANIFEST)


@pytest.fixture
def client() -> Iterator[RegistryClient]:
    with RegistryClient(plain_http=True, backoff=0.01) as c:
        yield c


def test_blob_round_trip_skips_existing_blobs(registry: Registry, client: RegistryClient) -> None:
    repo = f"{registry.host}/test/blob"
    data = b"hello falco" * 1000
    digest = client.push_blob(repo, data)
    assert digest == sha256_digest(data)
    client.push_blob(repo, data)
    assert client.stats.blob_pushes == 1  # the second push found it with HEAD
    out = io.BytesIO()
    assert client.get_blob(repo, digest, out, max_size=1 << 20) == len(data)
    assert out.getvalue() == data
    assert client.stats.blob_bytes == len(data)


def test_manifest_head_get_and_tags(registry: Registry, client: RegistryClient) -> None:
    repo = f"{registry.host}/test/manifest"
    digest = _push_small(client, repo, "1.0.0", b"layer")
    for tag in ("1", "1.0", "latest"):
        client.push_manifest(repo, tag, client.get_manifest(repo, "1.0.0").data, OCI_MANIFEST)
    head = client.head_manifest(repo, "1")
    assert head.digest == digest
    got = client.get_manifest(repo, digest)
    assert got.digest == digest and got.media_type == OCI_MANIFEST
    assert json.loads(got.data)["layers"][0]["size"] == 5
    assert sorted(client.list_tags(repo, page_size=2)) == ["1", "1.0", "1.0.0", "latest"]


def test_unknown_tag_is_not_found(registry: Registry, client: RegistryClient) -> None:
    repo = f"{registry.host}/test/missing"
    _push_small(client, repo, "1.0.0", b"x")
    with pytest.raises(NotFoundError, match=r"manifest .*:9\.9\.9 not found"):
        client.get_manifest(repo, "9.9.9")


def test_repository_without_host_is_a_usage_error(client: RegistryClient) -> None:
    with pytest.raises(UsageError, match="no registry host") as err:
        client.get_manifest("falco-rules", "latest")
    assert err.value.hint and "HOST/REPOSITORY" in err.value.hint


def test_tampered_blob_fails_digest_check(registry: Registry, client: RegistryClient) -> None:
    repo = f"{registry.host}/test/tamper"
    data = b"original content"
    digest = client.push_blob(repo, data)
    blob_path(registry, digest).write_bytes(b"evil content!!!!")
    with pytest.raises(IntegrityError, match="does not match its digest"):
        client.get_blob_bytes(repo, digest)


def test_blob_over_size_limit(registry: Registry, client: RegistryClient) -> None:
    repo = f"{registry.host}/test/big"
    digest = client.push_blob(repo, b"x" * 5000)
    with pytest.raises(IntegrityError, match="over the limit"):
        client.get_blob(repo, digest, io.BytesIO(), max_size=1000)


def test_registry_down() -> None:
    with (
        RegistryClient(plain_http=True, max_retries=1, backoff=0.01) as c,
        pytest.raises(NetworkError, match="cannot connect to registry") as err,
    ):
        c.list_tags(f"127.0.0.1:{free_port()}/x/y")
    assert "\n" not in err.value.one_line()


def test_basic_auth_wrong_and_right_credentials(tmp_path: Path) -> None:
    with running_registry(tmp_path, htpasswd=("falco", "s3cret-pw")) as reg:
        repo = f"{reg.host}/private/rules"
        wrong = RegistryCredentials("falco", "not-the-password")
        with (
            RegistryClient(plain_http=True, credentials=lambda h: wrong) as c,
            pytest.raises(NetworkError, match="401") as err,
        ):
            c.push_blob(repo, b"x")
        assert "not-the-password" not in err.value.one_line()
        right = RegistryCredentials("falco", "s3cret-pw")
        with RegistryClient(plain_http=True, credentials=lambda h: right) as c:
            digest = _push_small(c, repo, "1.0.0", b"secret layer")
            assert c.head_manifest(repo, "1.0.0").digest == digest
        with RegistryClient(plain_http=True) as anonymous, pytest.raises(NetworkError, match="401"):
            anonymous.list_tags(repo)


def test_tls_with_private_ca(tmp_path: Path) -> None:
    cert, key, ca = make_ca(tmp_path / "pki")
    with running_registry(tmp_path / "reg", tls=(cert, key, ca)) as reg:
        repo = f"{reg.host}/tls/rules"
        with RegistryClient(ca_file=ca) as c:
            digest = _push_small(c, repo, "1.0.0", b"over tls")
        with RegistryClient(max_retries=0) as c, pytest.raises(NetworkError) as err:
            c.head_manifest(repo, "1.0.0")
        assert "--ca-file" in err.value.one_line()
        with RegistryClient(insecure_skip_tls_verify=True) as c:
            assert c.head_manifest(repo, "1.0.0").digest == digest
        with RegistryClient(plain_http=True, max_retries=0) as c, pytest.raises(NetworkError) as e:
            c.head_manifest(repo, "1.0.0")
        assert "speaks TLS, not plain HTTP" in e.value.one_line()
        assert "drop --plain-http" in e.value.one_line()


def test_a_plain_http_registry_answered_over_tls_suggests_plain_http(registry: Registry) -> None:
    with RegistryClient(max_retries=0) as c, pytest.raises(NetworkError) as err:
        c.list_tags(f"{registry.host}/any/repo")
    line = err.value.one_line()
    assert "answered in plain HTTP, not TLS" in line and "pass --plain-http" in line
    assert "--ca-file" not in line


@pytest.fixture
def proxy(registry: Registry) -> Iterator[FaultProxy]:
    p = FaultProxy(registry.host).start()
    try:
        yield p
    finally:
        p.stop()


def test_429_and_503_are_retried_honouring_retry_after(proxy: FaultProxy) -> None:
    repo = f"{proxy.host}/faulty/rules"
    with RegistryClient(plain_http=True, backoff=0.01) as c:
        digest = _push_small(c, repo, "1.0.0", b"payload")
        proxy.faults.append(
            Fault(lambda m, p: "/manifests/" in p, status=429, retry_after="0", times=2)
        )
        proxy.faults.append(Fault(lambda m, p: "/tags/" in p, status=503, times=1))
        assert c.head_manifest(repo, "1.0.0").digest == digest
        assert c.list_tags(repo) == ["1.0.0"]
        assert c.stats.retries == 3


def test_persistent_429_and_5xx_give_one_line_errors(proxy: FaultProxy) -> None:
    repo = f"{proxy.host}/faulty/down"
    proxy.faults.append(Fault(lambda m, p: "/manifests/" in p, status=429, retry_after="0"))
    proxy.faults.append(Fault(lambda m, p: "/tags/" in p, status=502))
    with RegistryClient(plain_http=True, max_retries=2, backoff=0.01) as c:
        with pytest.raises(NetworkError, match="rate-limited"):
            c.get_manifest(repo, "1.0.0")
        with pytest.raises(NetworkError, match="answered 502"):
            c.list_tags(repo)
        proxy.faults.insert(0, Fault(lambda m, p: "/blobs/" in p, status=403))
        with pytest.raises(NetworkError, match=r"denied access .* \(403\)"):
            c.get_blob_bytes(repo, "sha256:" + "0" * 64)
        assert c.stats.retries == 2 + 2  # 429 and 502 retried, 403 not


def test_connection_cut_mid_blob(proxy: FaultProxy) -> None:
    repo = f"{proxy.host}/faulty/cut"
    data = bytes(range(256)) * 400
    with RegistryClient(plain_http=True, max_retries=2, backoff=0.01) as c:
        digest = c.push_blob(repo, data)
        proxy.faults.append(
            Fault(lambda m, p: "/blobs/" in p and m == "GET", cut_after=1000, times=1)
        )
        assert c.get_blob_bytes(repo, digest) == data  # retried once after the cut
        proxy.faults.append(Fault(lambda m, p: "/blobs/" in p and m == "GET", cut_after=1000))
        with pytest.raises(NetworkError, match="cut the connection"):
            c.get_blob_bytes(repo, digest)


def test_bearer_token_fetched_once_and_cached(proxy: FaultProxy) -> None:
    proxy.bearer = True
    repo = f"{proxy.host}/token/rules"
    with RegistryClient(plain_http=True) as c:
        digest = _push_small(c, repo, "1.0.0", b"with token")
        for _ in range(3):
            assert c.head_manifest(repo, "1.0.0").digest == digest
        pull_push = proxy.token_requests
        assert pull_push <= 2  # one per scope (pull,push then pull), reused afterwards
        c.list_tags(repo)
        assert proxy.token_requests == pull_push


def test_proxy_from_environment(
    registry: Registry, proxy: FaultProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://{proxy.host}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    repo = f"{registry.host}/via/proxy"
    with RegistryClient(plain_http=True) as c:
        _push_small(c, repo, "1.0.0", b"proxied")
        assert c.list_tags(repo) == ["1.0.0"]
    assert "GET /v2/via/proxy/tags/list?n=1000" in proxy.seen
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    seen = len(proxy.seen)
    with RegistryClient(plain_http=True) as c:
        assert c.list_tags(repo) == ["1.0.0"]
    assert len(proxy.seen) == seen


def test_retry_after_parsing() -> None:
    import httpx

    from falcoctl_py.oci.retry import retry_after

    def after(value: str) -> float | None:
        return retry_after(httpx.Response(429, headers={"Retry-After": value}))

    assert after("3") == 3.0
    assert after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past: no wait
    assert after("soon") is None


def test_parse_challenge() -> None:
    c = parse_challenge(
        'Bearer realm="https://auth.example/token",service="reg",'
        'scope="repository:a/b:pull,push"'
    )
    assert c is not None and c.scheme == "bearer"
    assert c.params == {
        "realm": "https://auth.example/token",
        "service": "reg",
        "scope": "repository:a/b:pull,push",
    }
    basic = parse_challenge('Basic realm="falcoctl-py"')
    assert basic is not None and basic.scheme == "basic"
    assert parse_challenge("") is None
    quoted = parse_challenge(r'Basic realm="a \"quoted\" realm"')
    assert quoted is not None and quoted.params == {"realm": 'a "quoted" realm'}
