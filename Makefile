# ringwise — build, lab, tests, benchmarks.
#
#   make lab        build and run the lab (embedded NATS), results in out/
#   make test       install test deps, go vet, all tests, fuzz smoke (CI runs this)
#   make bench      benchmarks → bench/raw.txt and BENCHMARKS.md
#   make generate   regenerate the BPF objects/bindings (needs clang, see bpf/README.md)

export PATH := /usr/local/go/bin:$(PATH)
SHELL := /bin/bash

GO ?= go
# Every module of the go.work workspace (the root pattern ./... stops at the
# nested modules, so each needs its own).
PKGS := ./... ./services/... ./bpf/... ./sensor/... ./enricher/... ./analyzer/... ./deployments/...
TEST_TIMEOUT ?= 20m
TESTFLAGS ?=
# An input count, not a duration: with a duration, Go's fuzz coordinator
# can race its own deadline and fail with "context deadline exceeded".
FUZZTIME ?= 60000x

.PHONY: all build lab test test-go vet fuzz-smoke generate bench deps tools deploy-binaries clean

all: build

build:
	$(GO) build -o bin/ringwise ./cmd/ringwise

lab: build
	./bin/ringwise lab --out out

# deps: apt packages (chromium) and the external programs the tests run
# (TEST_TOOLS, built once from their Go modules and cached in .cache/tools
# by scripts/tools.sh: Jaeger's cold build is several minutes, a warm run
# costs nothing). The tests ask scripts/tools.sh for them as well.
TEST_TOOLS ?= jaeger nats-server compose
deps:
	bash scripts/ci-deps.sh
	$(MAKE) --no-print-directory tools
	$(MAKE) --no-print-directory deploy-binaries

# deploy-binaries: the static binaries of the deployment's images
# (deployments/docker/bin, git-ignored), built on the host before the tests
# so that the compose end-to-end test's image builds only copy them.
deploy-binaries:
	@start=$$(date +%s); bash deployments/offline/prepare.sh binaries && \
		echo "deploy-binaries: ready in $$(( $$(date +%s) - start ))s"

tools:
	@start=$$(date +%s); bash scripts/tools.sh $(TEST_TOOLS) >/dev/null && \
		echo "tools: $(TEST_TOOLS) ready in $$(( $$(date +%s) - start ))s"

vet:
	$(GO) vet $(PKGS)

# -p 1: one test binary at a time. The root tests load BPF and run process
# floods; two of them at once on a 2-core machine would each capture the
# other's flood and measure a machine that is not the one they configured.
test-go:
	$(GO) test -p 1 -count=1 -timeout $(TEST_TIMEOUT) $(TESTFLAGS) $(PKGS)

fuzz-smoke:
	GO=$(GO) FUZZTIME=$(FUZZTIME) bash scripts/fuzz-smoke.sh

# RINGWISE_COMPOSE_E2E=1: make test also runs the compose end-to-end test
# of deployments/ (installs Docker, builds the images, tears it all down).
# deps must succeed; vet, fuzz smoke and the tests all run even if an earlier
# one failed, the test run comes last (its ok/FAIL lines end the output) and
# the target fails if any of them did.
test: deps
	@status=0; \
	$(MAKE) --no-print-directory vet || status=1; \
	$(MAKE) --no-print-directory fuzz-smoke || status=1; \
	RINGWISE_COMPOSE_E2E=1 $(MAKE) --no-print-directory test-go || status=1; \
	exit $$status

generate:
	$(MAKE) -C bpf generate

bench:
	bash scripts/bench.sh

clean:
	rm -rf bin out bench
