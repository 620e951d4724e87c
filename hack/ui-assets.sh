#!/usr/bin/env bash
# Installs the web UI's front-end libraries (Leaflet, ECharts) from the npm registry with the versions
# pinned in cloud/web/ui/package-lock.json and copies their dist files into cloud/web/ui/static/vendor/,
# which gridwatch-cloud embeds. Nothing third-party is committed: node_modules/ and the copied files are
# git-ignored. Idempotent: does nothing when the copies are newer than the lock file.
# Without npm the build still succeeds; the pages then show "run make ui" where a library is missing.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/../cloud/web/ui"

vendor=static/vendor
stamp=$vendor/.stamp
if [ -f "$stamp" ] && [ "$stamp" -nt package-lock.json ] && [ "$stamp" -nt package.json ] &&
   [ -f $vendor/leaflet/leaflet.js ] && [ -f $vendor/echarts/echarts.min.js ]; then
  echo "ui-assets: vendor files up to date"
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "ui-assets: npm not found: the UI will say 'run make ui' instead of drawing maps and charts" >&2
  exit 0
fi

echo "ui-assets: npm ci in cloud/web/ui"
npm ci --no-audit --no-fund --loglevel=error

rm -rf $vendor/leaflet $vendor/echarts
mkdir -p $vendor/leaflet/images $vendor/echarts
cp node_modules/leaflet/dist/leaflet.js node_modules/leaflet/dist/leaflet.css node_modules/leaflet/LICENSE $vendor/leaflet/
cp node_modules/leaflet/dist/images/*.png $vendor/leaflet/images/
# The "common" build has the bar, line and pie charts the pages use, at two thirds of the full size.
cp node_modules/echarts/dist/echarts.common.min.js $vendor/echarts/echarts.min.js
cp node_modules/echarts/LICENSE node_modules/echarts/NOTICE $vendor/echarts/
touch "$stamp"
echo "ui-assets: copied leaflet $(node -p 'require("./node_modules/leaflet/package.json").version') and echarts $(node -p 'require("./node_modules/echarts/package.json").version') into $vendor"
