# drainctl. `sudo make demo` shows it working; `sudo make test` runs every test.
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)

.PHONY: build demo demo-forward test e2e unit bench deps fmt vet clean man package

# A version packages accept: the last v* tag's, else 0.1.0, plus the
# number of commits and the commit (0.1.0+git212.3001b37).
VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' --abbrev=0 2>/dev/null | sed 's/^v//'); \
	echo "$${v:-0.1.0}+git$$(git rev-list --count HEAD 2>/dev/null || echo 0).$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
ARCH ?= $(shell $(GO) env GOARCH)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)

# Where build puts the binaries and package the packages.
BIN ?= bin
DIST ?= dist

build:
	$(GO) build -trimpath -ldflags "-s -w $(LDFLAGS)" -o $(BIN)/drainctl ./cmd/drainctl
	$(GO) build -o $(BIN)/drainctl-lab ./pkg/internal/demo

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
	$(GO) test -count=1 -v -run 'TestE2E' ./pkg/internal/lab

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

## package: dist/drainctl_VERSION_ARCH.deb and dist/drainctl-VERSION.ARCH.rpm,
## built by nfpm (a Go tool dependency: go.mod pins it, the module proxy
## serves it): the binary, both units, the config as a conffile, the
## drainctl group (sysusers.d), man pages and bash/zsh completion
package: build
	rm -rf $(DIST) && mkdir -p $(DIST)/man $(DIST)/completion
	$(BIN)/drainctl man $(DIST)/man && gzip -9n $(DIST)/man/*.8
	$(BIN)/drainctl completion bash > $(DIST)/completion/drainctl
	$(BIN)/drainctl completion zsh > $(DIST)/completion/_drainctl
	# nfpm expands the environment in its fields, not in contents' paths.
	sed 's|$${BIN}|$(BIN)|g; s|$${DIST}|$(DIST)|g' scripts/package/nfpm.yaml > $(DIST)/nfpm.yaml
	for p in deb rpm; do \
		VERSION=$(VERSION) ARCH=$(ARCH) $(GO) tool nfpm package \
			--config $(DIST)/nfpm.yaml --packager $$p --target $(DIST)/ || exit 1; \
	done

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
	rm -rf bin dist
