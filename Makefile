# gridwatch — the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go
export CGO_ENABLED := 1

.PHONY: all build demo test test-short deps vet fmt clean ui faults influxdb edge-arm64 edge-arm64-test

all: build

deps:
	@hack/install-deps.sh

# The web UI's front-end libraries from npm (Leaflet, ECharts), embedded into gridwatch-cloud.
ui:
	@hack/ui-assets.sh

build: deps ui
	@mkdir -p bin
	$(GO) build -o bin/gridwatch-edge ./edge/cmd/gridwatch-edge
	$(GO) build -o bin/gridwatch-cloud ./cloud/cmd/gridwatch-cloud

demo: ui build
	@hack/demo.sh

# All tests, including the end-to-end test with a real RTSP server and Mosquitto.
# InfluxDB 1.8.10 for the telemetry-history tests (built once with go install; skipped when present).
influxdb:
	@hack/influxdb.sh install

test: deps ui influxdb
	hack/verify-gofmt.sh
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

# Pure-Go packages only: seconds, no OpenCV/libavcodec needed.
test-short:
	$(GO) test -short ./edge/wire/... ./edge/config/... ./edge/outbox/... ./cloud/...

# Fault injection against real processes (Mosquitto, RTSP server, edge, cloud): one row per
# scenario, then "faults: N scenarios, lost L, duplicate cases D". About 15 min; needs root
# (tmpfs). `go run ./hack/faults --quick` for a shorter run while developing.
faults: build
	$(GO) run ./hack/faults

# Cross-build the edge agent for linux/arm64 (bin/gridwatch-edge-linux-arm64) and run edge unit
# tests for arm64 under qemu-user. Not part of `make test`: the first run downloads ≈ 465 Debian
# arm64 packages into _arm64/sysroot (1.2 GB unpacked). Recipe in ../shared/docs/TOOLCHAIN.md.
edge-arm64:
	@hack/edge-arm64.sh build

edge-arm64-test:
	@hack/edge-arm64.sh test

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin _demo
