#!/usr/bin/env bash
# spark.sh: install a pinned PySpark once into a virtual environment under
# the cache directory and print its SPARK_HOME (the pyspark package, which
# carries Spark's jars, the Spark Connect server among them, and its
# launcher scripts). Tests that need a Spark Connect server start one from
# it when QUIVER_SPARK_HOME names it, and skip when it does not:
#
#   QUIVER_SPARK_HOME=$(scripts/spark.sh) go test ./internal/testutil/sparktest/
#
# Only the server side is used, so only pyspark itself is installed (no
# pandas, no pyarrow, no grpcio). The server runs on the machine's Java 17
# (JAVA_HOME, else java on PATH). The download is about 450 MB, once;
# pip's cache is $PIP_CACHE_DIR (default: beside the venv).
set -euo pipefail
version=4.3.0
cache=${QUIVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/quiver}
venv=$cache/venv-spark
python=${PYTHON:-python3}
export PIP_DISABLE_PIP_VERSION_CHECK=1
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$cache/pip}
if [ ! -x "$venv/bin/python" ]; then
	echo "creating $venv" >&2
	"$python" -m venv "$venv" >&2
fi
have=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pyspark"))' 2>/dev/null || true)
if [ "$have" != "$version" ]; then
	echo "installing pyspark==$version into $venv (about 450 MB, once)" >&2
	"$venv/bin/pip" install -q "pyspark==$version" >&2
fi
home=$("$venv/bin/python" -c 'import importlib.util as u; print(u.find_spec("pyspark").submodule_search_locations[0])')
if ! ls "$home"/jars/spark-connect_*.jar >/dev/null 2>&1; then
	echo "spark.sh: $home/jars has no spark-connect jar; this PySpark cannot run a Spark Connect server" >&2
	exit 1
fi
echo "$home"
