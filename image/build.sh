#!/usr/bin/env bash
# Builds localhost/falcoctl-py:<version> with podman, pulling no base image: a Debian 12 rootfs
# from `debootstrap --variant=minbase` (python3, python3-bpfcc, ca-certificates), the project's
# wheel and its PyPI dependencies, then `podman import` with entrypoint falcoctl-py.
# The slow parts are cached outside the repo, keyed by a hash of their inputs:
#   $CACHE/base-<key>.tar   the stripped Debian rootfs (mirror, suite, packages, image/base.sh)
#   $CACHE/deps-<key>/      the PyPI dependencies (pyproject.toml's [project] dependencies)
# The image is labelled with its content key (the rootfs key, the dependencies key, the
# project wheel's content and this script): a build with the same key is skipped.
# Usage: image/build.sh [TAG]      build (root)
#        image/build.sh --key      print the content key only (nothing built, no root)
# (env: FALCOCTL_PY_IMAGE_CACHE, DEBIAN_MIRROR, PYTHON)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(dirname "$here")"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$repo/pyproject.toml" | head -1)"
key_only=0
if [ "${1:-}" = "--key" ]; then key_only=1; shift; fi
tag="${1:-localhost/falcoctl-py:$version}"
cache="${FALCOCTL_PY_IMAGE_CACHE:-/var/cache/falcoctl-py}"
suite=bookworm
packages="python3,python3-bpfcc,ca-certificates"
python="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$python" ] || python=/usr/bin/python3
podman=(podman --runtime runc --cgroup-manager=cgroupfs)

log() { printf 'image: %s\n' "$*" >&2; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }
if [ "$key_only" -eq 0 ]; then
  [ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot, podman import); run: sudo make image"
  for tool in debootstrap podman tar sha256sum; do
    command -v "$tool" >/dev/null || die "$tool is missing (run: scripts/install-system.sh test)"
  done
fi
# Temporary directories, removed on any exit.
tmpdirs=()
trap 'rm -rf ${tmpdirs[@]+"${tmpdirs[@]}"}' EXIT

# The Debian mirror this machine's apt uses (deb822 sources first, then sources.list).
mirror="${DEBIAN_MIRROR:-}"
if [ -z "$mirror" ]; then
  mirror="$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
fi
if [ -z "$mirror" ]; then
  mirror="$(awk '$1 == "deb" && $0 !~ /security/ {for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list 2>/dev/null || true)"
fi
mirror="${mirror:-http://deb.debian.org/debian}"

# The keys of the cached parts and of the image, from their inputs.
base_key="$(printf '%s\n' "$suite" "$mirror" "$packages" | cat - "$here/base.sh" | sha256sum | cut -c1-16)"
deps_recipe=2  # bump when the way dependencies are installed changes
deps_key="$( (echo "$deps_recipe"; sed -n '/^dependencies = \[/,/^\]/p' "$repo/pyproject.toml") | sha256sum | cut -c1-16)"

# The project wheel (fast, pure Python): its content is part of the image's content key.
wheels="$(mktemp -d)"
tmpdirs+=("$wheels")
"$python" -m pip wheel -q --no-deps --no-build-isolation -w "$wheels" "$repo" >/dev/null 2>&1 \
  || "$python" -m pip wheel -q --no-deps -w "$wheels" "$repo" >/dev/null \
  || die "building the project wheel failed"
wheel="$(ls "$wheels"/*.whl)"
wheel_hash="$("$python" -c 'import hashlib, sys, zipfile
z = zipfile.ZipFile(sys.argv[1]); h = hashlib.sha256()
for n in sorted(z.namelist()): h.update(n.encode() + b"\0" + z.read(n))
print(h.hexdigest())' "$wheel")"
recipe_hash="$(sha256sum < "$here/build.sh" | cut -c1-64)"  # a new recipe rebuilds the image
content_key="$(echo "$base_key $deps_key $wheel_hash $recipe_hash" | sha256sum | cut -c1-16)"
if [ "$key_only" -eq 1 ]; then
  echo "$content_key"
  exit 0
fi

mkdir -p "$cache"
chmod 0700 "$cache"
# One build at a time per cache (CI and developers' sessions share it).
exec 9>"$cache/.build.lock"
flock 9
if [ "$("${podman[@]}" image inspect -f '{{index .Config.Labels "io.falcoctl-py.inputs"}}' "$tag" 2>/dev/null || true)" = "$content_key" ]; then
  log "$tag is up to date (inputs $content_key)"
  exit 0
fi
base="$cache/base-$base_key.tar"
if [ -f "$base" ]; then
  log "rootfs cached: $base"
else
  log "debootstrap $suite from $mirror (cold build: a few minutes)"
  work="$(mktemp -d "$cache/.base-XXXXXX")"
  tmpdirs+=("$work")
  debootstrap --variant=minbase --include="$packages" "$suite" "$work/root" "$mirror" \
    > "$work/debootstrap.log" 2>&1 || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
  bash "$here/base.sh" "$work/root"
  tar --numeric-owner --xattrs -C "$work/root" -cf "$work/base.tar" .
  mv "$work/base.tar" "$base"
  rm -rf "$work"
fi

# Older cached rootfs and dependency sets (other inputs) are removed.
find "$cache" -maxdepth 1 -name 'base-*.tar' ! -name "base-$base_key.tar" -delete

# PyPI dependencies, installed once per dependency list into a cached directory.
deps="$cache/deps-$deps_key"
if [ ! -d "$deps" ]; then
  log "installing the PyPI dependencies into $deps"
  tmp="$(mktemp -d "$cache/.deps-XXXXXX")"
  reqs="$(sed -n '/^dependencies = \[/,/^\]/p' "$repo/pyproject.toml" | sed -n 's/^ *"\([^"]*\)".*$/\1/p')"  # one quoted requirement a line, comments allowed
  # shellcheck disable=SC2086
  "$python" -m pip install -q --no-compile --only-binary=:all: --target "$tmp" $reqs \
    > "$tmp.log" 2>&1 || { grep -v '^WARNING: Location' "$tmp.log" >&2; rm -rf "$tmp" "$tmp.log"; die "pip could not install the dependencies"; }
  rm -f "$tmp.log"
  rm -rf "$tmp/bin"
  find "$tmp" -name '__pycache__' -prune -exec rm -rf {} +
  find "$tmp" -name '*.so' -exec strip --strip-unneeded {} + 2>/dev/null || true
  find "$tmp" -depth -type d \( -name tests -o -name test \) -path '*/grpc*' -prune -exec rm -rf {} + 2>/dev/null || true
  mv "$tmp" "$deps"
fi
find "$cache" -maxdepth 1 -name 'deps-*' ! -name "deps-$deps_key" -exec rm -rf {} +

root="$wheels/root"
mkdir "$root"
tar --numeric-owner --xattrs -C "$root" -xf "$base"
site="$root/usr/local/lib/python3.11/dist-packages"
mkdir -p "$site"
cp -a "$deps/." "$site/"
"$python" -m pip install -q --no-deps --no-compile --target "$site" "$wheel"
rm -rf "$site/bin"
cat > "$root/usr/local/bin/falcoctl-py" <<'PY'
#!/usr/bin/python3
import sys
from falcoctl_py.cli.main import main
sys.exit(main())
PY
chmod 0755 "$root/usr/local/bin/falcoctl-py"
chroot "$root" /usr/bin/python3 -m compileall -q -j 0 /usr/local/lib/python3.11/dist-packages >/dev/null || true
chroot "$root" /usr/local/bin/falcoctl-py version >/dev/null || die "falcoctl-py does not start in the image"
# every module of both packages imports in the image (a dependency missing from the image fails
# here, not in a pod)
chroot "$root" /usr/bin/python3 -c 'import importlib, pkgutil
for pkg in ("falcoctl_py", "detector"):
    for info in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."):
        importlib.import_module(info.name)' || die "a module does not import in the image"
tar --numeric-owner --xattrs -C "$root" -cf "$wheels/rootfs.tar" .
"${podman[@]}" import -q \
  --change 'ENTRYPOINT ["/usr/local/bin/falcoctl-py"]' \
  --change 'CMD ["--help"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV PYTHONUNBUFFERED=1' \
  --change 'WORKDIR /' \
  --change "LABEL io.falcoctl-py.inputs=$content_key" \
  --change "LABEL org.opencontainers.image.version=$version" \
  --change 'LABEL org.opencontainers.image.title=falcoctl-py' \
  "$wheels/rootfs.tar" "$tag" >/dev/null
size="$("${podman[@]}" image inspect -f '{{.Size}}' "$tag")"
log "built $tag ($((size / 1000000)) MB, inputs $content_key)"
