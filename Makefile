# Quiver's build. The DuckDB driver needs the duckdb_arrow build tag; every
# target sets it, so nobody has to remember it.
GO      ?= go
TAGS    := duckdb_arrow
# Packages whose tests (build tag spark) run against a real Spark Connect
# server in make integration.
SPARK_PKGS := ./internal/sparkconnect/ ./internal/testutil/sparktest/ ./offline/ ./cmd/quiver/ ./server/
# The stream suites that make integration runs again against a real Apache
# Kafka broker (scripts/kafka.sh fetches its jars; internal/kafkatest
# starts one per test), beside kfake in make test.
KAFKA_PKGS := ./internal/kafkatest/ ./materialize/stream/
KAFKA_CMD_TESTS := ^TestStream
BIN     := bin/quiver
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# install: PREFIX/bin when PREFIX is set (make install PREFIX=/usr/local),
# else Go's install directory ($GOBIN, or $GOPATH/bin).
PREFIX  ?=
GOFILES  = $(shell git ls-files '*.go' | grep -v '\.pb\.go$$')
PROTOS   = $(shell find proto -name '*.proto' 2>/dev/null)
FUZZTIME ?= 30s
# FUZZFLAGS: more go test flags for make fuzz, e.g. -parallel 1 on a shared machine.
FUZZFLAGS ?=
# integration: the Python client's tests run in a virtual environment under
# QUIVER_CACHE, outside the repository, with pip's cache beside it.
QUIVER_CACHE ?= $${XDG_CACHE_HOME:-$$HOME/.cache}/quiver
PYTHON  ?= python3
PY_PINS := pyarrow==26.0.1 pandas==3.1.1 numpy==2.4.6 pytest==9.2.0 setuptools==80.9.0
# quiver.torch is tested with a CPU torch: Debian's python3-torch (1.13) in a
# venv over the system's site packages, so its NumPy (1.24) too; pyarrow 17
# is the newest that takes NumPy 1.x, and the oldest the client supports.
PY_TORCH ?= /usr/bin/python3
# The venvs: one per Python version with PY_PINS, and venv-torch.
PY_VENV  = $(QUIVER_CACHE)/venv-$$($(PYTHON) -c 'import sys; print("py%d.%d" % sys.version_info[:2])')
PY_TORCH_PINS := pyarrow==17.0.0 pytest==9.2.0 setuptools==80.9.0
# python/tests/feast runs real Feast beside Quiver in venv-feast: Feast, and
# the libraries its results depend on (the pandas/Dask offline store, the
# Redis client, the feature server), pinned so that a run is reproducible.
PY_FEAST_PINS := 'feast[redis]==0.67.0' pyarrow==26.0.1 pandas==2.3.3 numpy==2.4.6 dask==2026.8.0 \
	redis==7.4.1 protobuf==7.36.2 fastapi==0.165.0 uvicorn==0.55.0 pydantic==2.14.4 \
	pytest==9.2.0 setuptools==80.9.0
PY_FEAST_VENV = $(QUIVER_CACHE)/venv-feast

.PHONY: build install image test lint pytest integration demo bench bench-python bench-feast proto proto-spark fuzz deploy-check clean

## build: the quiver binary in bin/
build:
	$(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/quiver

## install: the quiver binary in PREFIX/bin, or in $(go env GOBIN) / $(go env GOPATH)/bin
install:
	@if [ -n "$(PREFIX)" ]; then \
		mkdir -p "$(PREFIX)/bin" && $(GO) build -tags $(TAGS) -ldflags "$(LDFLAGS)" -o "$(PREFIX)/bin/quiver" ./cmd/quiver && echo "installed $(PREFIX)/bin/quiver"; \
	else \
		$(GO) install -tags $(TAGS) -ldflags "$(LDFLAGS)" ./cmd/quiver && \
		dir=$$($(GO) env GOBIN); [ -n "$$dir" ] || dir=$$($(GO) env GOPATH | cut -d: -f1)/bin; \
		echo "installed $$dir/quiver"; \
	fi

## image: the container image, ghcr.io/quiverdata/quiver:$(VERSION), as an OCI tarball in bin/quiver-image.tar, reproducibly and with no Docker daemon (docs/image.md)
# The binary for the image is built with -trimpath and no build ID, so that
# the same commit gives the same bytes; the base's .deb files are kept in
# QUIVER_CACHE/debs; every time in the image is SOURCE_DATE_EPOCH, by
# default the last commit's.
IMAGE     := bin/quiver-image.tar
IMAGE_BIN := bin/image/quiver
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null)
image:
	$(GO) build -tags $(TAGS) -trimpath -ldflags "$(LDFLAGS) -buildid=" -o $(IMAGE_BIN) ./cmd/quiver
	@set -e; digest=$$(SOURCE_DATE_EPOCH="$(SOURCE_DATE_EPOCH)" QUIVER_CACHE="$(QUIVER_CACHE)" \
		$(GO) run ./scripts/image -binary $(IMAGE_BIN) -out $(IMAGE) -version "$(VERSION)" -revision "$(COMMIT)"); \
	echo "image $$digest"; \
	echo "load it: docker load -i $(IMAGE), podman load -i $(IMAGE)"; \
	echo "or push it: skopeo copy oci-archive:$(IMAGE) docker://ghcr.io/quiverdata/quiver:TAG"

## test: gofmt, go vet, every Go test with the race detector (fuzz seed corpora included), then pytest
test: lint
	$(GO) test -tags $(TAGS) -race -count=1 -timeout 15m ./...
	@$(MAKE) --no-print-directory pytest

## lint: gofmt and go vet
lint:
	@out=$$(gofmt -l $(GOFILES)); if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...

## deploy-check: render the Kubernetes manifests (deploy/base, deploy/overlays/*) and check them, the Prometheus rules and the Grafana dashboard against the exported metrics (deploy/metrics.txt) (deploy/ is a module of its own; no cluster needed)
deploy-check:
	cd deploy && $(GO) test -count=1 ./...

## pytest: the Python client's tests (python/tests) against a real quiver serve, in a venv under QUIVER_CACHE
pytest: build
	@export PIP_CACHE_DIR="$(QUIVER_CACHE)/pip"; \
	if ! venv=$$(scripts/pyvenv.sh "$(PY_VENV)" "$(PYTHON)" "" $(PY_PINS)); then \
		echo "WARNING: no Python virtual environment (Debian: apt-get install python3-venv): the Python client's tests cannot run"; \
		[ "$$CI" != true ] || exit 1; exit 0; \
	fi; \
	QUIVER_BIN="$(CURDIR)/$(BIN)" "$$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests --ignore=python/tests/torch --ignore=python/tests/feast

## integration: quiver.torch and examples/python/train.py with a real (CPU) torch, real Feast beside Quiver (venvs under QUIVER_CACHE), the stream suites against a real Apache Kafka broker (jars cached), deploy-check, the container image (built, unpacked and run from its root file system), the object-storage suites against a real MinIO (built once into the cache), and the Spark suites against a real Spark Connect server
integration: build
	@set -e; export PIP_CACHE_DIR="$(QUIVER_CACHE)/pip"; \
	if $(PY_TORCH) -c 'import torch' >/dev/null 2>&1; then \
		venv=$$(scripts/pyvenv.sh "$(QUIVER_CACHE)/venv-torch" "$(PY_TORCH)" system $(PY_TORCH_PINS)); \
	else \
		echo "WARNING: $(PY_TORCH) has no torch (Debian: apt-get install python3-torch); the quiver.torch tests cannot run"; \
		venv=$$(scripts/pyvenv.sh "$(PY_VENV)" "$(PYTHON)" "" $(PY_PINS)); \
	fi; \
	QUIVER_BIN="$(CURDIR)/$(BIN)" "$$venv/bin/python" -m pytest -q -p no:cacheprovider python/tests/torch; \
	venv=$$(scripts/pyvenv.sh "$(PY_FEAST_VENV)" "$(PYTHON)" "" $(PY_FEAST_PINS)); \
	QUIVER_BIN="$(CURDIR)/$(BIN)" "$$venv/bin/python" -m pytest -q -rs -p no:cacheprovider python/tests/feast; \
	kafka=$$(QUIVER_CACHE="$(QUIVER_CACHE)" scripts/kafka.sh); \
	QUIVER_KAFKA_HOME="$$kafka" $(GO) test -tags $(TAGS) -count=1 -timeout 20m $(KAFKA_PKGS); \
	QUIVER_KAFKA_HOME="$$kafka" $(GO) test -tags $(TAGS) -count=1 -timeout 20m -run '$(KAFKA_CMD_TESTS)' ./cmd/quiver/; \
	$(MAKE) --no-print-directory deploy-check; \
	$(MAKE) --no-print-directory image; \
	QUIVER_IMAGE="$(CURDIR)/$(IMAGE)" QUIVER_BIN="$(CURDIR)/$(BIN)" QUIVER_CACHE="$(QUIVER_CACHE)" \
		$(GO) test -tags image -count=1 ./scripts/image/; \
	minio=$$(scripts/minio.sh); \
	QUIVER_MINIO="$$minio" $(GO) test -tags $(TAGS) -count=1 ./storage/ ./registry/; \
	spark=$$(QUIVER_CACHE="$(QUIVER_CACHE)" scripts/spark.sh); \
	s3a=$$(QUIVER_CACHE="$(QUIVER_CACHE)" QUIVER_SPARK_HOME="$$spark" scripts/spark-s3a.sh); \
	QUIVER_SPARK_HOME="$$spark" QUIVER_SPARK_S3A_JARS="$$s3a" $(GO) test -tags "$(TAGS) spark" -count=1 -timeout 20m $(SPARK_PKGS)

## demo: the quickstart end to end on embedded defaults, in a new temporary directory (or QUIVER_DEMO_DIR), the Python client's tour in a venv under QUIVER_CACHE
demo: build
	@export PIP_CACHE_DIR="$(QUIVER_CACHE)/pip"; \
	if $(PY_TORCH) -c 'import torch' >/dev/null 2>&1; then \
		venv=$$(scripts/pyvenv.sh "$(QUIVER_CACHE)/venv-torch" "$(PY_TORCH)" system $(PY_TORCH_PINS)) || venv=""; \
	else \
		venv=$$(scripts/pyvenv.sh "$(PY_VENV)" "$(PYTHON)" "" $(PY_PINS)) || venv=""; \
	fi; \
	QUIVER_DEMO_PYTHON=$${venv:+$$venv/bin/python} ./scripts/demo.sh $(BIN)

## bench: every benchmark program under bench/
bench:
	@found=0; for d in bench/*/; do \
		if [ -f "$$d/main.go" ]; then found=1; echo "== $$d"; $(GO) run -tags $(TAGS) "./$$d" || exit 1; fi; \
	done; if [ $$found = 0 ]; then echo "no benchmark programs under bench/ yet"; fi

## bench-python: bench/python, a saved 1M-row set into torch tensors through the Python client, beside raw pyarrow.flight and local Parquet
bench-python: build
	@export PIP_CACHE_DIR="$(QUIVER_CACHE)/pip"; \
	venv=$$(scripts/pyvenv.sh "$(QUIVER_CACHE)/venv-torch" "$(PY_TORCH)" system $(PY_TORCH_PINS)) && \
	"$$venv/bin/python" bench/python/bench.py --quiver-bin "$(CURDIR)/$(BIN)"

## bench-feast: bench/feast, Feast 0.67 beside Quiver on the same data and redis-server: training sets, materialization, online serving (BENCH_FEAST_FLAGS, e.g. --quick)
BENCH_FEAST_FLAGS ?=
bench-feast: build
	@export PIP_CACHE_DIR="$(QUIVER_CACHE)/pip"; \
	venv=$$(scripts/pyvenv.sh "$(PY_FEAST_VENV)" "$(PYTHON)" "" $(PY_FEAST_PINS)) && \
	"$$venv/bin/python" bench/feast/bench.py --quiver-bin "$(CURDIR)/$(BIN)" $(BENCH_FEAST_FLAGS)

## proto: regenerate the committed Go code of proto/ (needs protoc, protoc-gen-go, protoc-gen-go-grpc)
proto:
	@if [ -z "$(PROTOS)" ]; then echo "no .proto files under proto/ yet"; exit 0; fi; \
	protoc --proto_path=proto --go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative $(PROTOS)

## proto-spark: regenerate internal/sparkconnect/pb from the Spark Connect server's own .proto files
# The .proto files are not committed: they are read from the server's jar
# (spark-connect_2.13-<version>.jar in the PySpark that scripts/spark.sh
# installs) into a scratch directory, so the Go code always matches the
# server version the tests run. The M options put every file in one Go
# package; the proto package stays spark.connect. example_plugins.proto is
# an example that nothing imports, and is left out.
# Needs protoc (3.21, Debian's protobuf-compiler), protoc-gen-go at go.mod's
# google.golang.org/protobuf and protoc-gen-go-grpc 1.6.0.
SPARK_PROTOS := base catalog commands common expressions ml ml_common pipelines relations types
SPARK_PB     := internal/sparkconnect/pb
SPARK_PB_PKG := github.com/quiverdata/quiver/$(SPARK_PB)
proto-spark:
	@set -e; home=$$(QUIVER_CACHE="$(QUIVER_CACHE)" scripts/spark.sh); \
	jar=$$(ls "$$home"/jars/spark-connect_2.13-*.jar | head -n 1); \
	src=$$(mktemp -d); trap 'rm -rf "$$src"' EXIT; \
	unzip -q -o "$$jar" 'spark/connect/*.proto' -d "$$src"; \
	files=""; mopts=""; \
	for f in $(SPARK_PROTOS); do \
		files="$$files spark/connect/$$f.proto"; \
		mopts="$$mopts,Mspark/connect/$$f.proto=$(SPARK_PB_PKG);pb"; \
	done; \
	rm -f $(SPARK_PB)/*.pb.go; \
	protoc --proto_path="$$src" \
		--go_out=$(SPARK_PB) --go_opt=paths=source_relative$$mopts \
		--go-grpc_out=$(SPARK_PB) --go-grpc_opt=paths=source_relative$$mopts \
		$$files; \
	mv $(SPARK_PB)/spark/connect/*.go $(SPARK_PB)/; rmdir $(SPARK_PB)/spark/connect $(SPARK_PB)/spark; \
	echo "generated $(SPARK_PB) from $$(basename $$jar)"

## fuzz: run each fuzz target for FUZZTIME (default 30s), one after another, with FUZZFLAGS
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -tags $(TAGS) -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; $(GO) test -tags $(TAGS) -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf bin .demo
