# pgfm — build, test and demonstrate.
GO        ?= go
BIN       := bin/pgfm
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/pgfm/pgfm/internal/version.Version=$(VERSION)
# Integration tests fail (instead of skipping) when PostgreSQL or network
# namespaces are missing.
TEST_ENV  := PGFM_REQUIRE_INTEGRATION=1 PGFM_REQUIRE_NETNS=1
FUZZTIME  ?= 30s

.PHONY: all build test unit vet fuzz demo bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pgfm

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# Every test, with the race detector: unit tests, then integration tests
# that run real PostgreSQL servers and pgfm agents (with etcd embedded) on
# loopback. As root, PostgreSQL runs as the postgres user.
test: vet
	$(TEST_ENV) $(GO) test -race -count=1 -timeout 25m ./...

# Pure and fast tests only.
unit:
	$(GO) test -race -count=1 -short ./internal/config/ ./internal/cluster/ ./internal/cli/ ./internal/httpapi/

# Coverage-guided fuzzing of the cluster-file parsers.
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzParseProperties$$' -fuzztime $(FUZZTIME) ./internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzParseNodes$$' -fuzztime $(FUZZTIME) ./internal/config/
	$(GO) test -run '^$$' -fuzz '^FuzzBuild$$' -fuzztime $(FUZZTIME) ./internal/config/

# A primary, a standby and a witness on loopback with this machine's
# PostgreSQL; prints cluster-status, then tears everything down
# (DEMO_KEEP=1 leaves it running).
demo: build
	bash scripts/demo.sh

# Failover benchmark (not a test): real clusters, a client writing every
# 10 ms, faults injected; prints the write-unavailability table.
# BENCH_RUNS=N runs per scenario (default 5).
bench: build
	$(TEST_ENV) PGFM_TEST_BINARY=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m -count 1 ./test/bench/

clean:
	rm -rf bin
