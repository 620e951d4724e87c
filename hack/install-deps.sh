#!/usr/bin/env bash
# Installs the Debian packages gridwatch needs to build, test and run its demo.
# Idempotent: installs only what is missing. Run from the repository root (or anywhere).
set -o errexit -o nounset -o pipefail

pkgs=(
  pkg-config gcc
  libopencv-dev                                   # gocv (edge vision)
  libavcodec-dev libavutil-dev libswscale-dev     # H.264 decode wrapper (edge/decode)
  ffmpeg                                          # scene simulator: H.264 encode to MPEG-TS
  mosquitto                                       # real broker for tests
  chromium fonts-wqy-microhei                     # web UI tests: headless Chromium (chromedp), a CJK font for the Chinese pages
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-rtsp
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${#missing[@]} missing packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/gridwatch-apt.log 2>&1 || {
  echo "install-deps: apt-get failed, see /tmp/gridwatch-apt.log" >&2; tail -20 /tmp/gridwatch-apt.log >&2; exit 1; }
echo "install-deps: done"
