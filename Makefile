# drainctl. `sudo make demo` shows it working; `sudo make test` runs every test.
GO ?= $(shell command -v go || echo /usr/local/go/bin/go)
# This Makefile's directory: its scripts version the tree make runs in
# (make -f ../drainctl/Makefile -C OTHER works on OTHER).
HERE := $(dir $(lastword $(MAKEFILE_LIST)))

.PHONY: build demo demo-forward test e2e unit bench deps fmt vet lint clean man package print-version

# The version packages carry: BASE_VERSION, then the commit's committer
# time (UTC) and short hash, 0.1.0+git20261201095720.1fa8c58 — the same
# from a full clone, a shallow one or a `git archive` tarball, and newer
# for every later commit (scripts/package/version says how). Raise
# BASE_VERSION for a release; VERSION=... overrides it all.
BASE_VERSION := 0.1.0
ifeq ($(origin VERSION),undefined)
VERSION := $(shell $(HERE)scripts/package/version $(CURDIR) $(BASE_VERSION) 2>/dev/null)
endif
# Expanded by the targets that need the version: without git (nor a git
# archive's scripts/package/commit) there is none to guess.
need-version = $(if $(VERSION),,$(error no version: $(CURDIR) is neither a git checkout nor a git archive of drainctl; pass VERSION=X.Y.Z))
ARCH ?= $(shell $(GO) env GOARCH)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
BUILD_DATE ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT) -X main.buildDate=$(BUILD_DATE)

# The build tools (nfpm, golangci-lint) have a module of their own,
# scripts/tools, so that their requirements stay out of the product's go.mod.
TOOL = $(GO) tool -modfile=$(HERE)scripts/tools/go.mod

# Where build puts the binaries and package the packages.
BIN ?= bin
DIST ?= dist

# The binary the package ships: CGO_ENABLED=0 so that a host with a C
# compiler and one without build the same binary (Go's own linker, no
# libc linked); a PIE (-buildmode=pie) with full RELRO (-bindnow: the
# GOT read-only after start), as Debian's hardening asks. docs/design.md,
# "The package's binary", says why not cgo.
build:
	$(need-version)
	CGO_ENABLED=0 $(GO) build -trimpath -buildmode=pie -ldflags "-s -w -bindnow $(LDFLAGS)" -o $(BIN)/drainctl ./cmd/drainctl
	CGO_ENABLED=0 $(GO) build -o $(BIN)/drainctl-lab ./pkg/internal/demo

## demo: real HAProxy and Apache in namespaces, users under load, web1
## restarted by drainctl and the naive way, a report side by side (root;
## installs what is missing; removes everything it made, also on Ctrl-C);
## WEB=nginx runs nginx app servers instead of Apache
demo: deps build
	bin/drainctl-lab -drainctl bin/drainctl $(if $(WEB),-web $(WEB))

## demo-forward: just the forward: one keep-alive user, withdrawn
## drainctl's way and the naive way
demo-forward: deps
	scripts/demo.sh

## e2e: the end-to-end tests alone (part of make test)
e2e: deps
	$(GO) test -count=1 -v -run 'TestE2E' ./pkg/internal/lab

## test: gofmt, go vet, lint, unit and kernel tests; fails if any test skips (root)
test: deps
	scripts/test.sh

## unit: the unit tier alone (-short): no root, no namespaces, no built
## binary; kernel and black-box tests skip
unit:
	$(GO) test -short ./...

## bench: forward latency per backend, connection table at 1k/10k/50k
## connections (root, a few minutes); figures in docs/benchmarks.md
bench:
	$(GO) test -run '^$$' -bench BenchmarkForward -benchtime 200x -count 3 ./pkg/forward
	$(GO) test -run '^$$' -bench BenchmarkConnTable -benchtime 20x ./pkg/conntable

## package: dist/drainctl_VERSION-1_ARCH.deb and dist/drainctl-VERSION-1.ARCH.rpm,
## built by nfpm (a Go tool of scripts/tools/go.mod, which pins it; the
## module proxy serves it): the binary, both units, the config as a
## conffile, the drainctl group (sysusers.d), man pages and bash/zsh
## completion, the copyright file and a changelog of this version
## (lintian and rpmlint clean: TestPackageLint)
package: build
	rm -rf $(DIST) && mkdir -p $(DIST)/man $(DIST)/completion
	$(BIN)/drainctl man $(DIST)/man && gzip -9n $(DIST)/man/*.8
	$(BIN)/drainctl completion bash > $(DIST)/completion/drainctl
	$(BIN)/drainctl completion zsh > $(DIST)/completion/_drainctl
	# The changelog of this version, the .deb's (VERSION-1, nfpm.yaml's
	# release) and the .rpm's.
	$(HERE)scripts/package/changelog $(VERSION)-1 $(BUILD_DATE) > $(DIST)/changelog.yml
	# nfpm expands the environment in its fields, not in contents' paths.
	for f in $(DIST)/man/*.8.gz; do \
		echo "  - {src: $$f, dst: /usr/share/man/man8/$${f##*/}, type: doc, file_info: {mode: 0644}}"; \
	done > $(DIST)/man.yaml
	sed 's|$${BIN}|$(BIN)|g; s|$${DIST}|$(DIST)|g; /# @rpm-man-pages@/r $(DIST)/man.yaml' scripts/package/nfpm.yaml > $(DIST)/nfpm.yaml
	for p in deb rpm; do \
		VERSION=$(VERSION) ARCH=$(ARCH) $(TOOL) nfpm package \
			--config $(DIST)/nfpm.yaml --packager $$p --target $(DIST)/ || exit 1; \
	done

## print-version: the version build and package use
print-version:
	$(need-version)
	@echo $(VERSION)

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

## lint: golangci-lint with .golangci.yml (part of make test)
lint:
	$(TOOL) golangci-lint run ./...

clean:
	rm -rf bin dist
