#!/usr/bin/env bash
# Installs the Debian packages falcoctl-py needs (run as root on Debian 12). Idempotent.
# Usage: scripts/install-system.sh [run|test]
set -euo pipefail
mode="${1:-run}"
pkgs=(python3 python3-venv python3-dev python3-bpfcc linux-headers-amd64 gcc make ca-certificates)
if [ "$mode" = test ]; then
  pkgs+=(docker-registry skopeo podman runc catatonit busybox-static apache2-utils iproute2 util-linux
        containerd docker.io debootstrap strace)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-system: missing Debian packages: ${missing[*]} (run as root, or apt-get install them)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's docker-registry package starts a system service on :5000; tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
  systemctl stop docker-registry || true
fi
