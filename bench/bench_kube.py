"""Kubernetes: the image's size, pod start to alert-ready against plain processes, follow-to-reload.

The chart's pod runs with ``podman kube play`` (as the pod tests do: the local image, Debian's
docker-registry and an index on loopback). Start-to-ready is from ``kube play`` to the first
200 from the detector's /healthz (init container install, BCC compile, /proc scan); the
baseline is the same steps as plain processes on the host in the same run (``artifact
install`` then ``run`` until /healthz), so the figure is a ratio. Follow-to-reload is from a
push of a new rules version to the detector's "rules reloaded" log line, with the sidecar
checking every 2 s. The machine is shared and noisy: read the ratios, not the seconds.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROUNDS = 3


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def _wait(check: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"not ready within {timeout}s")


def _reloaded(play: Any, before: int) -> bool:
    return bool(play.logs("detector").count("rules reloaded") > before)


def _image_size(image: str) -> tuple[int, int]:
    """(uncompressed size, gzip -1 size of ``podman save``) in bytes."""
    size = int(subprocess.run(
        ["podman", "image", "inspect", "-f", "{{.Size}}", image],
        capture_output=True, text=True, check=True).stdout.strip())
    save = subprocess.Popen(["podman", "save", image], stdout=subprocess.PIPE)
    gz = subprocess.run(["gzip", "-1"], stdin=save.stdout, capture_output=True, check=True)
    save.wait()
    return size, len(gz.stdout)


def _host_start(work: Path, index_url: str, port: int) -> float:
    """Seconds for ``artifact install`` + ``run`` to /healthz as plain processes on the host."""
    import yaml

    venv = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "falcoctl-py"
    work.mkdir(parents=True)
    rules, state = work / "rules", work / "state"
    cfg = work / "falcoctl.yaml"
    cfg.write_text(yaml.safe_dump({"indexes": [{"name": "test", "url": index_url}]}))
    falco = work / "falco.yaml"
    falco.write_text(yaml.safe_dump({"rules_files": [str(rules / "kube_rules.yaml")],
                                     "webserver": {"listen_port": port}}))
    started = time.monotonic()
    subprocess.run([str(venv), "--config", str(cfg), "artifact", "install", "kube-rules:latest",
                    "--plain-http", "--rulesfiles-dir", str(rules), "--state-dir", str(state)],
                   check=True, capture_output=True, env=dict(os.environ, HOME=str(work)))
    proc = subprocess.Popen([str(venv), "run", "-c", str(falco)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait(lambda: _healthy(port), 300)
        return time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    missing = [b for b in ("podman", "runc", "catatonit", "docker-registry", "debootstrap")
               if shutil.which(b) is None]
    if missing or os.geteuid() != 0:
        print(f"skipped: needs root and {', '.join(missing) or 'nothing else'} (make install-test)")
        return
    from tests.kube.test_pod import NEW_RULE, RULES_V1, chart_values, push_rules, serve_index
    from tests.kube_parts import KubePlay, image_name, objects, playable
    from tests.realparts import free_port, start_registry

    build = subprocess.run(["bash", "image/build.sh", image_name()], capture_output=True,
                           text=True, cwd=Path(__file__).resolve().parent.parent)
    if build.returncode != 0:
        print(f"skipped: make image failed: {build.stderr.strip()[-300:]}")
        return
    size, packed = _image_size(image_name())
    print(f"image {image_name()}: {size / 1e6:.0f} MB, {packed / 1e6:.0f} MB gzip'd "
          f"(podman save | gzip -1)")
    work = Path(tempfile.mkdtemp(prefix="bench-kube-"))
    registry = start_registry(work / "registry")
    index = serve_index(registry, work)
    push_rules(registry, work / "src", "1.0.0", RULES_V1.read_text())
    pod_times, host_times, reloads = [], [], []
    try:
        for i in range(ROUNDS):
            port = free_port()
            host_times.append(_host_start(work / f"host{i}", f"{index.url}/index.yaml", port))
            name = f"fpy-bench-{os.getpid()}-{i}"
            port = free_port()
            objs = objects(chart_values(f"{index.url}/index.yaml", port))
            play = KubePlay(work, playable(objs, name), name)
            try:
                started = time.monotonic()
                play.play()
                _wait(functools.partial(_healthy, port), 300)
                pod_times.append(time.monotonic() - started)
                if i == ROUNDS - 1:
                    before = play.logs("detector").count("rules reloaded")
                    pushed = time.monotonic()
                    push_rules(registry, work / "src", f"1.{i + 1}.0",
                               RULES_V1.read_text() + NEW_RULE)
                    _wait(functools.partial(_reloaded, play, before), 120)
                    reloads.append(time.monotonic() - pushed)
            finally:
                play.down()
    finally:
        index.stop()
        registry.stop()
        shutil.rmtree(work, ignore_errors=True)
    pod, host = min(pod_times), min(host_times)
    print(f"start to alert-ready (best of {ROUNDS}): pod {pod:.1f}s, host processes {host:.1f}s, "
          f"ratio pod/host {pod / host:.2f}")
    if reloads:
        print(f"follow to reload in the pod: {reloads[0]:.1f}s after the push "
              f"({reloads[0] / 2.0:.1f} follow periods of 2s)")
