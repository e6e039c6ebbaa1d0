# The two commands a new machine needs: `make run` and `make test`.
GO        ?= go
STATICCHECK_VERSION ?= v0.8.2
TEST_TIMEOUT ?= 12m

.PHONY: run test test-short bench lint fmt token build tidy

## run: start the whole system locally (embedded MongoDB-protocol server and Redis)
run:
	$(GO) run ./cmd/stack

## build: compile every binary into ./bin
build:
	$(GO) build -trimpath -o bin/ ./cmd/...

## test: every test, against real embedded servers
test:
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

## test-short: the fast tier only (no servers)
test-short:
	$(GO) test -short -count=1 ./...

# The packages with micro-benchmarks (only their test binaries are built).
BENCH_PKGS = $(sort $(patsubst %/,%,$(dir $(shell grep -rl --include='*_test.go' --exclude-dir='.?*' '^func Benchmark' .))))

## bench: the side-by-side system benchmark and the micro-benchmarks
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=200ms -count=1 $(BENCH_PKGS)
	$(GO) run ./cmd/bench

## lint: go vet, staticcheck and gofmt
lint:
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

## token: print a development access token (ROLE=customer|employee|admin, USER_ID=uuid)
token:
	@$(GO) run ./cmd/devtoken -role "$(or $(ROLE),customer)" -user "$(USER_ID)"
