#!/usr/bin/env bash
# Strips a debootstrapped rootfs down to what falcoctl-py needs at run time (argument: the root).
set -euo pipefail
root="$1"
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/usr/share/locale/* "$root"/usr/share/lintian "$root"/usr/share/linda \
  "$root"/usr/share/common-licenses "$root"/usr/share/zoneinfo/right "$root"/usr/share/bash-completion \
  "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* "$root"/var/cache/debconf/*-old \
  "$root"/var/log/* "$root"/tmp/* "$root"/usr/share/gcc "$root"/usr/share/gdb
# BCC's tools and examples (the detector uses the library only); LLVM's static parts.
rm -rf "$root"/usr/share/bcc "$root"/usr/sbin/*-bpfcc
find "$root"/usr/lib -name '*.a' -delete
# The Python test suite and IDLE-like extras of the standard library.
rm -rf "$root"/usr/lib/python3.11/test "$root"/usr/lib/python3.11/idlelib \
  "$root"/usr/lib/python3.11/lib2to3/tests "$root"/usr/lib/python3.11/ensurepip \
  "$root"/usr/lib/python3.11/pydoc_data
# Run-time only: no package manager front-ends, perl, debconf, iconv modules or Python 2to3.
# dpkg's status file stays (what is installed); its per-package file lists go.
rm -rf "$root"/usr/bin/perl* "$root"/usr/lib/x86_64-linux-gnu/perl-base "$root"/usr/share/perl5 \
  "$root"/usr/bin/apt* "$root"/usr/lib/apt "$root"/usr/lib/x86_64-linux-gnu/libapt-* \
  "$root"/var/lib/apt "$root"/etc/apt "$root"/usr/share/debconf "$root"/var/cache/debconf \
  "$root"/usr/lib/x86_64-linux-gnu/gconv "$root"/usr/lib/python3.11/lib2to3 \
  "$root"/usr/lib/python3.11/distutils "$root"/usr/share/zoneinfo/posix
find "$root"/var/lib/dpkg/info -type f ! -name '*.list' -delete
find "$root"/var/lib/dpkg/info -type f -name '*.list' -delete
printf 'nameserver 127.0.0.1\n' > "$root"/etc/resolv.conf
: > "$root"/etc/hostname
# ICU's 30 MB data library is loaded only because libLLVM links libxml2, which links ICU;
# neither BCC nor Python converts text through ICU. A 16-byte stand-in with the same soname and
# symbol keeps the dynamic linker happy (ICU would reject its header if anything ever used it).
icudata="$(ls "$root"/usr/lib/x86_64-linux-gnu/libicudata.so.[0-9]*.[0-9]* 2>/dev/null | head -1)"
if [ -n "$icudata" ] && command -v gcc >/dev/null; then
  major="$(basename "$icudata" | sed 's/libicudata\.so\.\([0-9]*\)\..*/\1/')"
  stub="$(mktemp -d)"
  printf 'const unsigned char icudt%s_dat[16] __attribute__((aligned(16))) = {0};\n' "$major" > "$stub/icudata.c"
  gcc -shared -fPIC -O2 -s -Wl,-soname,"libicudata.so.$major" -o "$stub/libicudata.so" "$stub/icudata.c"
  install -m 0644 "$stub/libicudata.so" "$icudata"
  rm -rf "$stub"
fi
# The image must still load BCC (libbcc -> libclang-cpp -> libLLVM -> libxml2 -> ICU).
chroot "$root" /usr/bin/python3 -c 'import bcc' || { echo "image: BCC does not load in the rootfs" >&2; exit 1; }
