"""The eBPF source's compiled hot loop (the rest of the build is in pyproject.toml).

Built by `make install` with the system's gcc (python3-dev); optional, as the pure-Python
decoder does the same work, slower. Declared here rather than in pyproject.toml, whose
``ext-modules`` table setuptools still calls experimental.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "detector.sources._lean",
            sources=[
                "detector/sources/_lean.c",
                "detector/sources/_lean_proc.c",
                "detector/sources/_lean_sock.c",
                "detector/sources/_lean_ring.c",
            ],
            depends=["detector/sources/_lean.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
            optional=True,
        )
    ]
)
