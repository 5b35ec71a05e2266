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
GO_LDFLAGS := -s -w \
  -X github.com/kubectl-netdiag/kubectl-netdiag/pkg/version.Version=$(VERSION) \
  -X github.com/kubectl-netdiag/kubectl-netdiag/pkg/version.HelperImageRepo=$(IMAGE_REPO)

.PHONY: all build plugin helper image test unit integration fuzz e2e bench demo cluster-up cluster-down load-image clean
all: build

build: plugin helper

plugin:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(GO_LDFLAGS)' -o $(BIN)/kubectl-netdiag ./cmd/kubectl-netdiag

helper:
	GOARCH=amd64 GO_LDFLAGS='$(GO_LDFLAGS)' OUT='$(BIN)/netdiag-helper' hack/build-helper.sh

image: helper
	$(GO) run ./hack/mkimage --tag '$(HELPER_IMAGE)' --out $(OUT)/netdiag-helper-image.tar \
	  --file $(BIN)/netdiag-helper:/netdiag-helper:0755 --entrypoint /netdiag-helper --cmd idle

cluster-up:
	e2e/cluster/up.sh

cluster-down:
	e2e/cluster/down.sh

load-image: image
	e2e/cluster/import-image.sh $(OUT)/netdiag-helper-image.tar

# Every test: unit, kernel integration (root, real network namespaces), a
# bounded differential fuzz of the filter pre-check against libpcap, and
# end-to-end on the local cluster (brought up if it is not running).
test: unit integration fuzz e2e

unit:
	hack/ensure-packages.sh tshark
	$(GO) vet ./...
	hack/check-deps.sh
	CGO_ENABLED=0 $(GO) test -count=1 ./...

# The helper's tests linked with the static libpcap (filter compiler), and as
# root the kernel integration tests in fresh network namespaces.
integration:
	hack/ensure-packages.sh iproute2 busybox-static tcpdump
	hack/test-helper.sh
	$(GO) test -tags integration -count=1 ./pkg/checks/...

# Differential fuzzing of the plugin's filter pre-check against libpcap (the
# helper's static build): whatever the pre-check refuses, libpcap must refuse.
FUZZTIME ?= 30s
fuzz:
	hack/test-helper.sh --pkg ./pkg/filter -run '^$$' -fuzz '^FuzzAgainstLibpcap$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 10s -timeout 0

e2e: build cluster-up load-image e2e-release
	NETDIAG_RELEASE_DIR='$(abspath $(E2E_RELEASE_DIR))' NETDIAG_KREW_BIN='$(abspath $(KREW_BIN))' \
	  $(GO) test -tags e2e -count=1 -v -timeout 30m -skip TestHealthyNodeAfterAll ./e2e/
	@# Last, on the node every other test induced faults on: it reads healthy.
	$(GO) test -tags e2e -count=1 -v -timeout 5m -run TestHealthyNodeAfterAll ./e2e/

# Benchmarks, each against its reference measured in the same run (ratios,
# not timings: these machines are shared and noisy).
# CaptureVsTcpdump matches both capture references: a burst half matching
# "udp port 40001", and the iperf3 flood of 64-byte datagrams (...Flood).
bench:
	hack/ensure-packages.sh iproute2 tcpdump iperf3
	hack/test-helper.sh -run '^$$' -bench 'Capture$$' -benchmem
	hack/test-helper.sh -run '^$$' -bench 'CaptureVsTcpdump' -benchtime 3x
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/checks/
	$(MAKE) build cluster-up load-image
	$(GO) test -tags e2e -run '^$$' -bench . -benchtime 5x ./e2e/

demo: build cluster-up load-image
	e2e/demo.sh

clean:
	rm -rf $(OUT)

# Release image of the helper: linux/amd64 (native) and linux/arm64 (cross-
# compiled with musl, run under qemu-aarch64-static by hack/build-helper.sh),
# each with the version linker flags, in one multi-platform OCI image index
# written as an OCI layout directory. The index digest goes to
# $(RELEASE_HELPER_DIGEST) so a release can pin it; mkimage fails if a
# platform's compressed image is over $(HELPER_MAX_PLATFORM_SIZE) bytes.
# A release target hooks in with `release: release-image` and reads
# $(RELEASE_HELPER_OCI) and $(RELEASE_HELPER_DIGEST).
RELEASE_DIR ?= $(OUT)/release
RELEASE_HELPER_AMD64 := $(RELEASE_DIR)/netdiag-helper-linux-amd64
RELEASE_HELPER_ARM64 := $(RELEASE_DIR)/netdiag-helper-linux-arm64
RELEASE_HELPER_OCI := $(RELEASE_DIR)/netdiag-helper-oci
RELEASE_HELPER_DIGEST := $(RELEASE_DIR)/helper-image.digest
HELPER_MAX_PLATFORM_SIZE ?= 8000000

.PHONY: helper-amd64 helper-arm64 release-image
helper-amd64:
	GOARCH=amd64 GO_LDFLAGS='$(GO_LDFLAGS)' OUT='$(RELEASE_HELPER_AMD64)' hack/build-helper.sh

helper-arm64:
	GOARCH=arm64 GO_LDFLAGS='$(GO_LDFLAGS)' OUT='$(RELEASE_HELPER_ARM64)' hack/build-helper.sh

release-image: helper-amd64 helper-arm64
	$(GO) run ./hack/mkimage --oci-layout '$(RELEASE_HELPER_OCI)' --digest-file '$(RELEASE_HELPER_DIGEST)' \
	  --platform-file 'linux/amd64=$(RELEASE_HELPER_AMD64):/netdiag-helper:0755' \
	  --platform-file 'linux/arm64=$(RELEASE_HELPER_ARM64):/netdiag-helper:0755' \
	  --entrypoint /netdiag-helper --cmd idle --tag '$(HELPER_IMAGE)' \
	  --max-platform-size $(HELPER_MAX_PLATFORM_SIZE)

# A release in $(RELEASE_DIR): the helper image index (above), the plugin
# archives for linux, darwin and windows × amd64 and arm64 (each pinned to
# the index digest), checksums.txt and the rendered krew manifest.
#   make release VERSION=v0.1.0 IMAGE_REPO=registry.example/netdiag-helper
.PHONY: release release-check release-push krew-tools e2e-release
release: release-check release-image
	VERSION='$(VERSION)' IMAGE_REPO='$(IMAGE_REPO)' GO_LDFLAGS='$(GO_LDFLAGS)' RELEASE_DIR='$(RELEASE_DIR)' hack/release.sh

release-check:
	@VERSION='$(VERSION)' IMAGE_REPO='$(IMAGE_REPO)' hack/release.sh --check

# Pushes the release's image index, unchanged, as $(IMAGE_REPO):$(VERSION)
# (REGISTRY_USERNAME / REGISTRY_PASSWORD from the environment, if needed).
release-push:
	$(GO) run ./hack/ocipush --layout '$(RELEASE_HELPER_OCI)' --ref '$(IMAGE_REPO):$(VERSION)'

# krew and its manifest validator, built from krew's own module (v0.4.3 is
# the newest v0.4.x the module proxy serves) into the cache.
KREW_VERSION := v0.4.3
KREW_BIN := $(CACHE_DIR)/krew/$(KREW_VERSION)/bin
krew-tools:
	@[ -x '$(KREW_BIN)/krew' ] && [ -x '$(KREW_BIN)/validate-krew-manifest' ] || \
	  GOBIN='$(abspath $(KREW_BIN))' GOFLAGS=-mod=mod $(GO) install sigs.k8s.io/krew/cmd/krew@$(KREW_VERSION) sigs.k8s.io/krew/cmd/validate-krew-manifest@$(KREW_VERSION)

# The release the e2e tests install with krew: this tree, its image in the
# local cluster's registry.
E2E_RELEASE_DIR := $(OUT)/e2e-release
e2e-release: krew-tools
	$(MAKE) release VERSION=v0.0.0-e2e IMAGE_REPO=localhost:5000/netdiag-helper RELEASE_DIR=$(E2E_RELEASE_DIR)
