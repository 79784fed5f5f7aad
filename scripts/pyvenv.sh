#!/usr/bin/env bash
# pyvenv.sh VENV PYTHON SYSTEM PIN...: make the virtual environment VENV
# with PYTHON when it is missing (over the system's site packages when
# SYSTEM is "system"), install the pinned packages and this checkout's
# python/ package into it, and print VENV. pip's cache is $PIP_CACHE_DIR.
set -euo pipefail
venv=$1 python=$2 system=$3
shift 3
export PIP_DISABLE_PIP_VERSION_CHECK=1
if [ ! -x "$venv/bin/python" ]; then
	echo "creating $venv" >&2
	if [ "$system" = system ]; then
		"$python" -m venv --system-site-packages "$venv" >&2
	else
		"$python" -m venv "$venv" >&2
	fi
fi
"$venv/bin/pip" install -q "$@" >&2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$venv/bin/pip" install -q --no-build-isolation --no-deps --force-reinstall "$root/python" >&2
rm -rf "$root/python/build" "$root"/python/*.egg-info
echo "$venv"
