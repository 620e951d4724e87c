#!/usr/bin/env bash
# Cross-builds gridwatch-edge for linux/arm64 (the roadside box) and runs edge
# unit tests for arm64 under qemu-user. Recipe: ../shared/docs/TOOLCHAIN.md.
#
#   hack/edge-arm64.sh build   # → bin/gridwatch-edge-linux-arm64
#   hack/edge-arm64.sh test [PKG...]  # edge unit tests (or just PKG...), GOARCH=arm64, run by qemu-aarch64-static
#
# The first run installs crossbuild-essential-arm64 and qemu-user-static,
# adds the arm64 architecture to apt (package lists only: nothing arm64 is
# installed) and unpacks the arm64 OpenCV/libavcodec -dev packages and their
# dependencies into a sysroot under _arm64/ (a large download; see README).
# `apt-get install libopencv-dev:arm64` would remove the amd64 OpenCV, so the
# packages are only downloaded and unpacked with dpkg -x.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."

ROOT=${ARM64_ROOT:-$PWD/_arm64}
SYSROOT=$ROOT/sysroot
LIBDIR=$SYSROOT/usr/lib/aarch64-linux-gnu

log() { echo "edge-arm64: $*" >&2; }

tools() {
  local missing=()
  command -v aarch64-linux-gnu-gcc >/dev/null || missing+=(crossbuild-essential-arm64)
  command -v qemu-aarch64-static >/dev/null || missing+=(qemu-user-static)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    apt-get install -y -qq -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
  fi
}

sysroot() {
  [ -f "$SYSROOT/.complete" ] && return 0
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    log "adding the arm64 architecture to apt (lists only)"
    dpkg --add-architecture arm64
    apt-get update -qq -o DPkg::Lock::Timeout=600
  fi
  mkdir -p "$ROOT/debs" "$SYSROOT"
  # Every package the -dev packages pull in, arm64 or arch-independent.
  local roots=(libopencv-dev:arm64 libavcodec-dev:arm64 libavutil-dev:arm64 libswscale-dev:arm64 libc6-dev:arm64)
  log "resolving dependencies"
  apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
      --no-replaces --no-enhances --no-pre-depends "${roots[@]}" \
    | grep -v '^ ' | grep -v '^<' | sort -u >"$ROOT/packages.txt"
  # Arch-independent packages appear without a suffix, arm64 ones with :arm64;
  # an amd64 name means a dependency satisfied by any architecture: take arm64's.
  sed -i -e '/:arm64$/!{/:/!s/$/:arm64/}' "$ROOT/packages.txt"
  # apt-get download refuses the whole list when one name has no arm64
  # candidate (arch-independent packages): move such names to their plain
  # form and try again.
  local try
  for try in 1 2 3 4; do
    log "downloading $(wc -l <"$ROOT/packages.txt") packages (pass $try)"
    if (cd "$ROOT/debs" && xargs -a "$ROOT/packages.txt" apt-get download -qq 2>"$ROOT/download.err"); then
      break
    fi
    grep -o "from package [^ ]*\|Unable to locate package [^ ]*" "$ROOT/download.err" | awk '{print $NF}' | sort -u >"$ROOT/bad.txt"
    [ -s "$ROOT/bad.txt" ] || { cat "$ROOT/download.err" >&2; return 1; }
    grep -vxF -f "$ROOT/bad.txt" "$ROOT/packages.txt" >"$ROOT/next.txt" || true
    grep ':arm64$' "$ROOT/bad.txt" | sed 's/:arm64$//' >>"$ROOT/next.txt" || true
    sort -u "$ROOT/next.txt" >"$ROOT/packages.txt"
  done
  log "unpacking $(ls "$ROOT/debs" | wc -l) .deb files into $SYSROOT"
  for d in "$ROOT"/debs/*.deb; do dpkg -x "$d" "$SYSROOT"; done
  # Debian points libblas/liblapack at an implementation through alternatives,
  # which dpkg -x does not create.
  for lib in blas lapack; do
    local impl
    impl=$(ls "$LIBDIR"/${lib}/lib${lib}.so.3 "$LIBDIR"/openblas-pthread/lib${lib}.so.3 2>/dev/null | head -1 || true)
    [ -n "$impl" ] && ln -sf "$impl" "$LIBDIR/lib${lib}.so.3" && ln -sf "$impl" "$LIBDIR/lib${lib}.so"
  done
  # Absolute symlinks inside the sysroot must point into it.
  find "$SYSROOT" -type l -lname '/*' | while read -r l; do
    ln -sf "$SYSROOT$(readlink "$l")" "$l"
  done
  touch "$SYSROOT/.complete"
  log "sysroot ready: $(du -sh "$SYSROOT" | cut -f1)"
}

# The loader under qemu does not read the sysroot's alternatives for BLAS/LAPACK.
QEMU_ENV="LD_LIBRARY_PATH=/usr/lib/aarch64-linux-gnu/lapack:/usr/lib/aarch64-linux-gnu/blas:/usr/lib/aarch64-linux-gnu"

crossenv() {
  export CGO_ENABLED=1 GOOS=linux GOARCH=arm64
  export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++
  export PKG_CONFIG_SYSROOT_DIR=$SYSROOT
  export PKG_CONFIG_LIBDIR=$LIBDIR/pkgconfig:$SYSROOT/usr/share/pkgconfig
  export CGO_CFLAGS="--sysroot=$SYSROOT" CGO_CXXFLAGS="--sysroot=$SYSROOT"
  export CGO_LDFLAGS="-Wl,--sysroot=$SYSROOT -Wl,-rpath-link,$LIBDIR -Wl,-rpath-link,$SYSROOT/lib/aarch64-linux-gnu -Wl,-rpath-link,$LIBDIR/blas -Wl,-rpath-link,$LIBDIR/lapack"
}

build() {
  tools
  sysroot
  crossenv
  mkdir -p bin
  log "building bin/gridwatch-edge-linux-arm64"
  go build -trimpath -o bin/gridwatch-edge-linux-arm64 ./edge/cmd/gridwatch-edge
  file bin/gridwatch-edge-linux-arm64 2>/dev/null || true
  ls -l bin/gridwatch-edge-linux-arm64
  log "smoke test under qemu: check-config firmware-config/demo-box.yaml"
  qemu-aarch64-static -L "$SYSROOT" -E "$QEMU_ENV" bin/gridwatch-edge-linux-arm64 check-config firmware-config/demo-box.yaml
}

# Pure-Go edge packages (no OpenCV, no libavcodec) and the cgo ones.
PURE=(./edge/wire/... ./edge/config/... ./edge/outbox/... ./edge/coverclass/... ./edge/h264/... ./edge/clip/... ./edge/occupancy/... ./edge/sensors/... ./edge/atomicfile/... ./edge/uplink/...)
CGO=(./edge/decode/... ./edge/cover/... ./edge/detect/...)

test() {
  tools
  sysroot
  crossenv
  local exec="qemu-aarch64-static -L $SYSROOT -E $QEMU_ENV"
  local rc=0
  if (($#)); then # just these packages (cgo on)
    go test -count=1 -short -exec "$exec" "$@"
    return
  fi
  log "pure-Go packages under qemu"
  CGO_ENABLED=0 go test -count=1 -short -exec "$exec" "${PURE[@]}" || rc=1
  log "cgo packages (OpenCV, libavcodec from the sysroot) under qemu"
  go test -count=1 -short -exec "$exec" "${CGO[@]}" || rc=1
  return $rc
}

case "${1:-build}" in
  build) build ;;
  test) shift; test "$@" ;;
  sysroot) tools; sysroot ;;
  *) echo "usage: $0 build|test|sysroot" >&2; exit 2 ;;
esac
