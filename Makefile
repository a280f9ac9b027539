# pgfm — build, test and demonstrate.
GO        ?= go
BIN       := bin/pgfm
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -X github.com/pgfm/pgfm/internal/version.Version=$(VERSION)
# Integration tests fail (instead of skipping) when PostgreSQL or network
# namespaces are missing.
ETCD      := bin/etcd
TEST_ENV  := PGFM_REQUIRE_INTEGRATION=1 PGFM_REQUIRE_NETNS=1 PGFM_TEST_ETCD=$(CURDIR)/$(ETCD)
FUZZTIME  ?= 30s

.PHONY: all build test unit vet fuzz demo bench campaign clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/pgfm

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# Packages whose tests start whole clusters (PostgreSQL servers and
# race-built agents). On 2 cores two such clusters at once starve each
# other's etcd heartbeats, so these packages run one at a time, each test
# alone, after every other package has run (those in parallel).
CLUSTER_PKGS := ./test/integration/ ./test/netns/
OTHER_PKGS    = $(shell $(GO) list ./... | grep -v -e '/test/integration$$' -e '/test/netns$$' -e '/test/campaign$$')

# Every test, with the race detector: unit tests, then integration tests
# that run real PostgreSQL servers and pgfm agents (with etcd embedded) on
# loopback and in network namespaces. As root, PostgreSQL runs as the
# postgres user.
test: vet $(ETCD)
	$(TEST_ENV) $(GO) test -race -count=1 -timeout 10m $(OTHER_PKGS)
	$(TEST_ENV) $(GO) test -race -count=1 -timeout 25m -p 1 -parallel 1 $(CLUSTER_PKGS)

# The etcd server that tests of the external etcd mode run as a cluster,
# built from the etcd module pgfm embeds (same version).
$(ETCD): go.mod go.sum
	$(GO) build -o $(ETCD) go.etcd.io/etcd/server/v3

# Fault campaigns on a busy machine (CAMPAIGN_LOAD busy processes): how
# many formations of the harness's cluster collapse, and an isolated
# primary's fence against the new primary's promotion, CAMPAIGN_RUNS times
# each; prints the figures. CI runs a short one (CAMPAIGN_RUNS=1).
CAMPAIGN_RUNS ?= 20
CAMPAIGN_LOAD ?= 2
campaign: $(ETCD)
	$(TEST_ENV) PGFM_CAMPAIGN_RUNS=$(CAMPAIGN_RUNS) PGFM_CAMPAIGN_LOAD=$(CAMPAIGN_LOAD) \
		$(GO) test -race -count=1 -v -timeout 150m -run '$(CAMPAIGN)' ./test/campaign/

# Pure and fast tests only.
unit:
	$(GO) test -race -count=1 -short ./internal/config/ ./internal/cluster/ ./internal/cli/ ./internal/httpapi/

# Coverage-guided fuzzing: every Fuzz target of the repository, one after
# the other, each for FUZZTIME. Targets are discovered (go test -list in
# the packages whose tests declare one), so a new one is fuzzed too.
FUZZ_PKGS = $(shell grep -rl --include='*_test.go' '^func Fuzz' . | xargs -r -n1 dirname | sort -u)
fuzz:
	@set -e; n=0; \
	list=$$($(GO) test -list '^Fuzz' $(FUZZ_PKGS)); \
	targets=$$(echo "$$list" | awk '/^Fuzz/ { t[++c] = $$1 } /^ok/ { for (i = 1; i <= c; i++) print $$2 "," t[i]; c = 0 }'); \
	test -n "$$targets" || { echo "fuzz: no targets found"; exit 1; }; \
	for pt in $$targets; do \
		pkg=$${pt%%,*}; t=$${pt#*,}; n=$$((n + 1)); \
		echo "== $$t ($$pkg)"; \
		$(GO) test -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done; \
	echo "fuzz: $$n targets, $(FUZZTIME) each: no failure"

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
