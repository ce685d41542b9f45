# kinstall — see README.md. `make demo` runs the main job on the built-in lab; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN := bin/kinstall
N ?= 5
LAB ?= kinstall
# The lab's artifacts bundle (built from Go module sources, cached outside the repo).
BUNDLE ?= /var/tmp/kinstall-bundle
ETCD_VERSIONS ?= v3.6.8 v3.6.14
# make demo builds one Kubernetes version; make test also the next one (the upgrade test).
KUBE_VERSIONS ?= v1.34.4
TEST_KUBE_VERSIONS ?= v1.34.4 v1.35.4
FLANNEL_VERSION ?= v0.28.10
GOFILES = $(shell git ls-files '*.go' 2>/dev/null)

.PHONY: build test unit lint bench demo bundle lab-up lab-down lab-status fuzz clean

build:
	$(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/kinstall

# Every test: unit tests, the transport against a real sshd, and end-to-end tests on lab hosts
# (Docker containers with systemd + sshd; the lab starts a Docker engine if none runs).
test: build
	$(MAKE) bundle KUBE_VERSIONS="$(TEST_KUBE_VERSIONS)"
	KINSTALL_BUNDLE=$(BUNDLE) $(GO) test -count=1 -timeout 75m ./...

# Offline artifacts for the lab, all cached in $(BUNDLE): etcd (two versions, for upgrade tests),
# Kubernetes and flannel from Go module sources; distribution packages resolved in a lab host;
# container images built locally with docker build (needs the lab image; Docker is started).
bundle: build
	bash test/bundle/build-etcd.sh $(BUNDLE) $(ETCD_VERSIONS)
	bash test/bundle/build-k8s.sh $(BUNDLE) $(KUBE_VERSIONS)
	bash test/bundle/build-flannel.sh $(BUNDLE) $(FLANNEL_VERSION)
	$(BIN) lab image >/dev/null
	bash test/bundle/build-debs.sh $(BUNDLE)
	for v in $(KUBE_VERSIONS); do bash test/bundle/build-images.sh $(BUNDLE) $$v || exit 1; done

# Unit tests only (no sshd, no lab): fast feedback while editing.
unit:
	$(GO) test -count=1 -short ./...

lint:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fuzz:
	$(GO) test ./internal/inventory -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 60s

bench: build
	$(GO) run ./test/bench

lab-up: build
	$(BIN) lab up -n $(N) --name $(LAB)

lab-down: build
	$(BIN) lab down --name $(LAB)

lab-status: build
	$(BIN) lab status --name $(LAB)

demo: build bundle
	KINSTALL_ARTIFACTS=$(BUNDLE) ./test/demo.sh

clean:
	rm -rf bin
