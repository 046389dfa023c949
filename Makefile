# gslbd: `make test` is the whole test suite, the same command CI runs.
GO ?= go

.PHONY: all build test deps mod-check fmt-check vet staticcheck gotest demo bench fuzz clean

all: build

# The version and commit go into the binary with -X as well: go build
# stamps vcs.revision itself, but not where -buildvcs=false is set (as in
# GOFLAGS on the project's build machine), and never a tag-based version.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o gslbd ./cmd/gslbd

# Run the server on the bundled demo configuration.
demo:
	$(GO) run ./cmd/gslbd

# The whole suite: install what is missing, check that go.mod and go.sum are
# tidy, check formatting, vet, staticcheck, then every test with the race
# detector (the dig cases and the 3-site failover scenario included).
test: deps mod-check fmt-check vet staticcheck gotest

deps:
	./scripts/install-deps.sh

# go.mod and go.sum say exactly what the code imports: nothing to add or drop.
mod-check:
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# staticcheck is pinned in go.mod (tool directive): the same version
# everywhere, built from the module cache, whatever is on the PATH.
staticcheck:
	$(GO) tool staticcheck ./...

# The 3-site scenario measures time on real processes: it runs alone after
# the other packages, so that their tests do not compete with it for the CPU.
gotest:
	GSLBD_REQUIRE_DIG=1 $(GO) test -race -count=1 -timeout 12m $$($(GO) list ./... | grep -v /scenario)
	GSLBD_REQUIRE_DIG=1 $(GO) test -race -count=1 -timeout 12m -v ./scenario

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./resolver/

# Every fuzz target, one at a time, FUZZTIME each (on demand). A crash is
# saved under the package's testdata/fuzz/, which go test then replays.
FUZZTIME ?= 10m
FUZZ_TARGETS := resolver:FuzzServeDNS resolver:FuzzFastPath zones:FuzzLoad cluster:FuzzReceive \
	cmd/gslbd:FuzzParseConfig cmd/gslbd:FuzzParseKeyring admin:FuzzParseTokens admin:FuzzDrainAPI
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; echo "== $$name ($$pkg)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

clean:
	rm -f gslbd
