"""The OCI registry client and Falco's artifact format."""

from __future__ import annotations

from falcoctl_py.oci.client import (
    CredentialsProvider,
    ManifestResult,
    RegistryClient,
    RegistryCredentials,
    RequestStats,
    sha256_digest,
)
from falcoctl_py.oci.media import (
    ArtifactConfig,
    ArtifactManifest,
    ArtifactType,
    Dependency,
    Descriptor,
    Platform,
    Requirement,
)
from falcoctl_py.oci.reference import Reference, parse_reference

__all__ = [
    "ArtifactConfig",
    "ArtifactManifest",
    "ArtifactType",
    "CredentialsProvider",
    "Dependency",
    "Descriptor",
    "ManifestResult",
    "Platform",
    "Reference",
    "RegistryClient",
    "RegistryCredentials",
    "RequestStats",
    "Requirement",
    "parse_reference",
    "sha256_digest",
]
