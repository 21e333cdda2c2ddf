# drainctl. `sudo make demo` shows it working; `sudo make test` runs every test.
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)

.PHONY: build demo test unit bench deps fmt vet clean

build:
	$(GO) build -o bin/drainctl ./cmd/drainctl

## demo: a user on a keep-alive connection through the forward, withdrawn
## the drainctl way and the naive way (root; installs what is missing)
demo: deps
	scripts/demo.sh

## test: gofmt, go vet, unit and kernel tests; fails if any test skips (root)
test: deps
	scripts/test.sh

## unit: the tests that need no root (kernel tests skip)
unit:
	$(GO) test ./...

## bench: forward latency per backend, connection table at 1k/10k/50k
## connections (root, a few minutes); figures in docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench BenchmarkForward -benchtime 200x -count 3 ./pkg/forward
	$(GO) test -run '^$$' -bench BenchmarkConnTable -benchtime 20x ./pkg/conntable

deps:
	scripts/install-deps.sh

fmt:
	gofmt -w cmd pkg

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
