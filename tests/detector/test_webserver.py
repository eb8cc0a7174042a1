"""The web endpoints answer in Falco's shapes."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from detector.metrics import Metrics
from detector.webserver import WebEndpoints, WebServer
from falcoctl_py.errors import DetectorError


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, "", ""


def test_endpoints() -> None:
    m = Metrics(falco_version="0.42.0")
    m.n_evts, m.n_drops_buffer, m.processed = 10, 2, 8
    m.count_match("Read sensitive file", 4, "syscall", ["filesystem", "T1555"])
    m.rules_files = {"/etc/falco/r.yaml": "ab" * 32}
    versions = {"engine_version_semver": "0.57.0", "engine_version": "57",
                "plugin_api_version": "3.12.0", "plugin_versions": {"counter": "0.2.1"}}
    server = WebServer(WebEndpoints(versions, m.prometheus), address="127.0.0.1",
                       port=0).start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        code, ctype, body = _get(base + "/healthz")
        assert (code, ctype, json.loads(body)) == (200, "application/json", {"status": "ok"})
        code, _, body = _get(base + "/versions")
        assert json.loads(body) == versions
        code, ctype, body = _get(base + "/metrics")
        assert code == 200 and ctype.startswith("text/plain")
        assert 'falcosecurity_scap_n_evts_total{raw_name="n_evts"} 10' in body
        assert 'falcosecurity_scap_n_drops_buffer_total{raw_name="n_drops_buffer"} 2' in body
        assert "falcosecurity_falco_events_processed_total 8" in body
        assert ('falcosecurity_falco_rules_matches_total{priority="4",rule_name="Read sensitive'
                ' file",source="syscall",tag_T1555="true",tag_filesystem="true"} 1') in body
        assert "falcosecurity_falco_outputs_queue_num_drops_total 0" in body
        assert f'sha256="{"ab" * 32}"' in body
        assert _get(base + "/nope")[0] == 404
        with pytest.raises(DetectorError, match="cannot listen"):
            WebServer(WebEndpoints(versions, None), address="127.0.0.1", port=server.port)
    finally:
        server.stop()
