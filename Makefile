# drainctl. `sudo make demo` shows it working; `sudo make test` runs every test.
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)

.PHONY: build demo demo-forward test e2e unit bench deps fmt vet clean man

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/drainctl ./cmd/drainctl
	$(GO) build -o bin/drainctl-lab ./cmd/drainctl-lab

## demo: real HAProxy and Apache in namespaces, users under load, web1
## restarted by drainctl and the naive way, a report side by side (root;
## installs what is missing; removes everything it made, also on Ctrl-C)
demo: deps build
	bin/drainctl-lab -drainctl bin/drainctl

## demo-forward: just the forward: one keep-alive user, withdrawn
## drainctl's way and the naive way
demo-forward: deps
	scripts/demo.sh

## e2e: the end-to-end tests alone (part of make test)
e2e: deps
	$(GO) test -count=1 -v -run 'TestE2E' ./pkg/lab

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

## man: write the man pages (docs/man) from the CLI's definitions; make
## test fails when the committed pages differ from what the code makes
man:
	rm -f docs/man/*.8
	$(GO) run ./cmd/drainctl man docs/man

deps:
	scripts/install-deps.sh

fmt:
	gofmt -w cmd pkg

vet:
	$(GO) vet ./...

clean:
	rm -rf bin
