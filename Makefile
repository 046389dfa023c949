# gslbd: `make test` is the whole test suite, the same command CI runs.
GO ?= go

.PHONY: all build test deps fmt-check vet staticcheck gotest demo bench fuzz clean

all: build

build:
	$(GO) build -o gslbd ./cmd/gslbd

# Run the server on the bundled demo configuration.
demo:
	$(GO) run ./cmd/gslbd

# The whole suite: install what is missing, check formatting, vet,
# staticcheck, then every test with the race detector (the dig cases and the
# 3-site failover scenario included).
test: deps fmt-check vet staticcheck gotest

deps:
	./scripts/install-deps.sh

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

STATICCHECK_VERSION ?= 2026.2.2
staticcheck:
	@command -v staticcheck >/dev/null 2>&1 || $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	PATH="$$PATH:$$($(GO) env GOPATH)/bin" staticcheck ./...

# The 3-site scenario measures time on real processes: it runs alone after
# the other packages, so that their tests do not compete with it for the CPU.
gotest:
	GSLBD_REQUIRE_DIG=1 $(GO) test -race -count=1 -timeout 12m $$($(GO) list ./... | grep -v /scenario)
	GSLBD_REQUIRE_DIG=1 $(GO) test -race -count=1 -timeout 12m -v ./scenario

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./resolver/

clean:
	rm -f gslbd
