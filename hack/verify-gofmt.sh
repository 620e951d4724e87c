#!/usr/bin/env bash
# Fails if any Go file is not gofmt-clean; `make fmt` fixes it.
set -o errexit -o nounset -o pipefail
cd "$(dirname "$0")/.."
bad=$(gofmt -l $(git ls-files '*.go' 2>/dev/null; git ls-files --others --exclude-standard '*.go' 2>/dev/null) 2>/dev/null || true)
if [ -n "$bad" ]; then
  echo "gofmt needed (run 'make fmt'):" >&2
  echo "$bad" >&2
  exit 1
fi
