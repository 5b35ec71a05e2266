# kubectl-netdiag — see README.md. Targets used by people, CI and e2e.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
IMAGE_REPO ?= localhost/netdiag-helper
HELPER_IMAGE := $(IMAGE_REPO):$(VERSION)
OUT := _output
BIN := $(OUT)/bin
CACHE_DIR ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/kubectl-netdiag
export CACHE_DIR
LDFLAGS := -s -w \
  -X github.com/kubectl-netdiag/kubectl-netdiag/pkg/version.Version=$(VERSION) \
  -X github.com/kubectl-netdiag/kubectl-netdiag/pkg/version.HelperImageRepo=$(IMAGE_REPO)

.PHONY: all build plugin helper image test unit integration e2e bench demo cluster-up cluster-down load-image clean dist
all: build

build: plugin helper

plugin:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/kubectl-netdiag ./cmd/kubectl-netdiag

helper:
	LDFLAGS='$(LDFLAGS)' OUT='$(BIN)/netdiag-helper' hack/build-helper.sh

image: helper
	$(GO) run ./hack/mkimage --tag '$(HELPER_IMAGE)' --out $(OUT)/netdiag-helper-image.tar \
	  --file $(BIN)/netdiag-helper:/netdiag-helper:0755 --entrypoint /netdiag-helper --cmd idle

cluster-up:
	e2e/cluster/up.sh

cluster-down:
	e2e/cluster/down.sh

load-image: image
	e2e/cluster/import-image.sh $(OUT)/netdiag-helper-image.tar

# Every test: unit, kernel integration (root, real network namespaces) and
# end-to-end on the local cluster (brought up if it is not running).
test: unit integration e2e

unit:
	$(GO) vet ./...
	CGO_ENABLED=0 $(GO) test -count=1 ./...

# The helper's tests linked with the static libpcap (filter compiler), and as
# root the kernel integration tests in fresh network namespaces.
integration:
	hack/ensure-packages.sh iproute2 busybox-static tcpdump
	hack/test-helper.sh
	$(GO) test -tags integration -count=1 ./pkg/checks/...

e2e: build cluster-up load-image
	$(GO) test -tags e2e -count=1 -v -timeout 30m ./e2e/

# Benchmarks, each against its reference measured in the same run (ratios,
# not timings: these machines are shared and noisy).
bench:
	hack/test-helper.sh -run '^$$' -bench 'Capture$$' -benchmem
	hack/test-helper.sh -run '^$$' -bench CaptureVsTcpdump -benchtime 3x
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/checks/
	$(MAKE) build cluster-up load-image
	$(GO) test -tags e2e -run '^$$' -bench . -benchtime 5x ./e2e/

demo: build cluster-up load-image
	e2e/demo.sh

clean:
	rm -rf $(OUT)

# Release archives for krew (plugin only; the helper ships as an image).
DIST_PLATFORMS := linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
dist:
	@rm -rf $(OUT)/dist && mkdir -p $(OUT)/dist
	@set -e; for p in $(DIST_PLATFORMS); do \
	  os=$${p%/*}; arch=$${p#*/}; ext=; [ $$os = windows ] && ext=.exe; \
	  d=$(OUT)/dist/$$os-$$arch; mkdir -p $$d; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $$d/kubectl-netdiag$$ext ./cmd/kubectl-netdiag; \
	  cp LICENSE $$d/; \
	  tar -C $$d -czf $(OUT)/dist/kubectl-netdiag_$(VERSION)_$${os}_$${arch}.tar.gz .; \
	done; cd $(OUT)/dist && sha256sum *.tar.gz
