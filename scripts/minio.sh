#!/usr/bin/env bash
# minio.sh: build the MinIO server once, from the Go module proxy, into
# the cache directory the storage tests look in, and print its path. The
# storage tests run against it when it is there (and skip MinIO when it is
# not); a plain `go test ./...` never builds it. MinIO is a separate
# program under the AGPL: it is run as a test server, never linked.
#
#   scripts/minio.sh            # build (minutes) unless present
#   QUIVER_MINIO=/path/to/minio go test ./storage/   # or use another binary
set -euo pipefail
version=${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}
dir=${XDG_CACHE_HOME:-$HOME/.cache}/quiver/minio
bin=$dir/minio
if [ ! -x "$bin" ]; then
	mkdir -p "$dir"
	echo "building MinIO $version into $dir (this takes minutes)" >&2
	GOBIN=$dir GOFLAGS= go install "github.com/minio/minio@$version" >&2
fi
echo "$bin"
