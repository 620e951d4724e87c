# gridwatch — the two commands a newcomer needs are `make demo` and `make test`.
GO ?= go
export CGO_ENABLED := 1

.PHONY: all build demo test test-short deps vet fmt clean

all: build

deps:
	@hack/install-deps.sh

build: deps
	@mkdir -p bin
	$(GO) build -o bin/gridwatch-edge ./edge/cmd/gridwatch-edge
	$(GO) build -o bin/gridwatch-cloud ./cloud/cmd/gridwatch-cloud

demo: build
	@hack/demo.sh

# All tests, including the end-to-end test with a real RTSP server and Mosquitto.
test: deps
	hack/verify-gofmt.sh
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 15m ./...

# Pure-Go packages only: seconds, no OpenCV/libavcodec needed.
test-short:
	$(GO) test -short ./edge/wire/... ./edge/config/... ./edge/outbox/... ./cloud/...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin _demo
