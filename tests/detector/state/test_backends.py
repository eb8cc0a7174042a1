"""Runtime backends: their clients (gRPC for CRI and containerd, sqlite for podman's storage)
are made on the first container asked about, so a node without containers does not pay for
them in memory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from detector.events import ContainerInfo
from detector.state.backends import backends_for
from detector.state.runtimes.engines import Engines

PROBE = """
import sys
from detector.state.backends import backends_for
from detector.state.runtimes.engines import Engines
backends = backends_for(Engines())
print(len(backends), "grpc" in sys.modules, "sqlite3" in sys.modules)
for b in backends:
    b.close()
"""


def test_no_grpc_or_sqlite_until_a_container_is_looked_up() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True,
                         check=True).stdout.split()  # fmt: skip
    assert int(out[0]) > 0 and out[1:] == ["False", "False"]


def test_the_first_lookup_makes_the_client(tmp_path: Path) -> None:
    sock = str(tmp_path / "nobody.sock")
    engines = Engines(docker=(), podman=(), containerd=(sock,), cri=(), podman_storage=None)
    (backend,) = backends_for(engines)
    info = ContainerInfo(id="0123456789ab", full_id="0123456789ab" * 5 + "cdef", type="containerd")
    with pytest.raises((OSError, LookupError)):  # nothing listens: the client was made and asked
        backend.fetch(info, "default")
    assert "grpc" in sys.modules
    backend.close()
