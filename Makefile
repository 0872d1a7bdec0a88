# agentix-store tasks. `make run` starts the node on the default data dir
# (initialising it on first run); `make test` runs the whole test suite.

GO        ?= go
BIN       := bin
PKGS      := ./...
# Data dir for `make run`: --dir, else $AGENTIX_STORE_DIR, else
# $XDG_DATA_HOME/agentix-store (~/.local/share/agentix-store).
RUN_ARGS  ?=
FUZZTIME  ?= 10s
BENCHTIME ?= 1x
TEST_TIMEOUT ?= 80m

.PHONY: all build run test bench fuzz lint clean loadtest idle-rss

all: build

build:
	$(GO) build -o $(BIN)/ ./cmd/...

run: build
	$(BIN)/agentix-store serve $(RUN_ARGS)

test:
	$(GO) test -timeout $(TEST_TIMEOUT) $(PKGS)

# Benchmarks: one iteration each of the big ones by default
# (BENCHTIME=3x or 10s for steadier figures).
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 60m $(PKGS)

# A short run of every fuzz target (FUZZTIME each).
fuzz:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
	  for t in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$t"; \
	    $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# 256 concurrent publishers against one daemon for 60 s (loopback only);
# prints publishes/s, p99 latency and the daemon's peak RSS.
loadtest:
	LOAD_DURATION=$${LOAD_DURATION:-60s} $(GO) test -count=1 -run '^TestLoadPublishers$$' -v -timeout 10m ./e2e/

# The daemon's resident set on a fresh data dir after 5 s idle
# (IDLE_RSS_MAX_MB=40 makes it fail above 40 MB).
idle-rss:
	$(GO) test -count=1 -run '^TestIdleRSS$$' -v -timeout 5m ./e2e/

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

clean:
	rm -rf $(BIN)
	$(GO) clean -testcache
