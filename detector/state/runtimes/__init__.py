"""Container runtimes asked for metadata: CRI, containerd, the Docker API, podman storage."""
