#!/usr/bin/env bash
# kafka.sh: fetch, once, the jars of a pinned Apache Kafka broker
# (scripts/kafka/pom.xml: kafka_2.13 and its runtime dependencies, about
# 45 MB) from Maven Central into a directory under the cache, and print
# the directory. Tests start a real single-node broker in KRaft mode from
# it when QUIVER_KAFKA_HOME names it (internal/kafkatest), and use the
# in-process kfake otherwise:
#
#   QUIVER_KAFKA_HOME=$(scripts/kafka.sh) go test ./materialize/stream/
#
# The broker runs on the machine's Java 17 or newer (JAVA_HOME, else java
# on PATH). Maven's downloads stay in $QUIVER_CACHE/m2.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${QUIVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/quiver}
pom=$here/kafka/pom.xml
stamp=$(sha256sum "$pom" | cut -c1-16)
out=$cache/kafka-$stamp
if [ ! -f "$out/.done" ]; then
	echo "fetching the Kafka broker's jars into $out (about 45 MB, once)" >&2
	rm -rf "$out.tmp"
	mvn -q -B -f "$pom" -Dmaven.repo.local="$cache/m2" dependency:copy-dependencies \
		-DoutputDirectory="$out.tmp/libs" -DincludeScope=runtime >&2
	touch "$out.tmp/.done"
	rm -rf "$out"
	mv "$out.tmp" "$out"
fi
echo "$out"
