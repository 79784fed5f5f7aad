#!/usr/bin/env bash
# spark-s3a.sh: fetch, once, the jars a Spark server needs to read s3a://
# paths (hadoop-aws and the AWS SDK's S3 modules, scripts/spark-s3a/pom.xml)
# into a directory under the cache, leave out those the Spark installation
# already has in a newer or equal version (netty, slf4j, httpclient, ...),
# and print the directory. Tests put it on the Spark server's class path:
#
#   QUIVER_SPARK_S3A_JARS=$(scripts/spark-s3a.sh)
#
# Maven's downloads stay in $QUIVER_CACHE/m2 (about 20 MB).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache=${QUIVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/quiver}
spark_home=${QUIVER_SPARK_HOME:-$("$here/spark.sh")}
pom=$here/spark-s3a/pom.xml
stamp=$(sha256sum "$pom" | cut -c1-16)
out=$cache/spark-s3a-$stamp
if [ ! -f "$out/.done" ]; then
	echo "fetching the s3a jars into $out (about 20 MB, once)" >&2
	rm -rf "$out.tmp"
	mvn -q -B -f "$pom" -Dmaven.repo.local="$cache/m2" dependency:copy-dependencies \
		-DoutputDirectory="$out.tmp" -DincludeScope=runtime >&2
	for jar in "$out.tmp"/*.jar; do
		name=$(basename "$jar" | sed -E 's/-[0-9][0-9.]*(\.Final)?\.jar$//')
		if ls "$spark_home/jars/" | grep -qE "^$name-[0-9]"; then
			rm "$jar"
		fi
	done
	touch "$out.tmp/.done"
	rm -rf "$out"
	mv "$out.tmp" "$out"
fi
echo "$out"
