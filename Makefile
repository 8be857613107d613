# make test is the one test command (README, .ci/run). Needs Go and gcc (-race).
GO ?= go
# A count, not a duration: with -fuzztime=20s Go 1.26's coordinator can fail a
# target with a bare "context deadline exceeded" at the deadline on a loaded
# box (golang/go#75804, fixed in Go 1.27); a count has no deadline to race.
FUZZTIME ?= 150000x

.PHONY: test lint cross unit fuzz bench build demo release

test: lint unit fuzz

build:
	$(GO) build -o thunder ./cmd/thunder

demo:
	$(GO) run ./cmd/thunder demo

# Every platform a release ships (README, "Platforms"). On Windows only the
# processor runs: the collector refuses to start there (README).
TARGETS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 freebsd/amd64 windows/amd64
VET_GOOS ?= darwin freebsd windows

lint: cross
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags thunder_portable ./internal/target
	$(GO) tool staticcheck ./...
	$(GO) tool staticcheck -tags thunder_portable ./internal/target
	$(GO) mod tidy -diff

# go vet (tests included) for each other GOOS and a build of the binary for
# each target, with the flags of packaging/release.sh (CGO_ENABLED=0
# -trimpath), so that they share one build cache with the release and the
# package test: seconds once it is warm (a cold one costs about a minute per
# GOOS on 2 cores).
cross:
	@for os in $(VET_GOOS); do echo "GOOS=$$os go vet ./..."; CGO_ENABLED=0 GOOS=$$os $(GO) vet -trimpath ./... || exit 1; done
	@for t in $(TARGETS); do echo "go build $$t"; CGO_ENABLED=0 GOOS=$${t%/*} GOARCH=$${t#*/} $(GO) build -trimpath -o /dev/null ./cmd/thunder || exit 1; done

# Release artifacts in dist/: archives, .deb, .rpm, SHA256SUMS (packaging/release.sh).
release:
	@case "$(VERSION)" in v*) ;; *) echo "usage: make release VERSION=v1.2.3"; exit 2;; esac
	packaging/release.sh $(VERSION) dist $(TARGETS)

# go test -json through internal/testsum: progress while the long e2e
# package runs, the skipped tests with their reasons at the end, and go
# test's exit status (go run turns a failure into status 1). Then
# internal/target again with its os.Root tree, Windows's, built on Linux
# by -tags thunder_portable (about 30 s).
unit:
	$(GO) run ./internal/testsum -race -timeout 20m ./...
	$(GO) test -race -tags thunder_portable ./internal/target

# One fuzz target per run (go test -fuzz restriction), bounded in time.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzDecode$$' -fuzztime=$(FUZZTIME) ./internal/wire
	$(GO) test -run='^$$' -fuzz='^FuzzHandshake$$' -fuzztime=$(FUZZTIME) ./internal/wire
	$(GO) test -run='^$$' -fuzz='^FuzzClean$$' -fuzztime=$(FUZZTIME) ./internal/relpath
	$(GO) test -run='^$$' -fuzz='^FuzzProof$$' -fuzztime=$(FUZZTIME) ./internal/wire
	$(GO) test -run='^$$' -fuzz='^FuzzSealed$$' -fuzztime=$(FUZZTIME) ./internal/wire
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/identity

# The benchmark suite (docs/BENCHMARKS.md): real daemons on 127.0.0.1, a table
# of ratios against ceilings measured in the same run. ARGS=-quick for a smoke
# run, ARGS=-peers to add rsyslog and syslog-ng. Micro-benchmarks:
# go test -run='^$$' -bench=. ./internal/...
bench:
	$(GO) run ./bench $(ARGS)
