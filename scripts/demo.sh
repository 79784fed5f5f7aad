#!/usr/bin/env bash
# The quickstart end to end on embedded defaults: scaffold a feature
# repository, check it, plan and apply it, read the registry, then change a
# definition and see the plan flag what the change means.
#
# The feature repository is made where a user would make one, outside this
# checkout (a new temporary directory, or $QUIVER_DEMO_DIR), so that it is
# a Git repository of its own and apply records its commits.
#
# Under pipefail a pipe must not end in a reader that stops early (head):
# the writer then dies of SIGPIPE and the script with status 141. Cut
# output with sed, which reads it all.
set -euo pipefail
quiver=$(cd "$(dirname "${1:-bin/quiver}")" && pwd)/$(basename "${1:-bin/quiver}")
root=$(cd "$(dirname "$0")/.." && pwd)
demo=${QUIVER_DEMO_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/quiver-demo.XXXXXX")}
repo=$demo/rides

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold='' plain=''; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
run() { printf '$ quiver %s\n' "$*"; "$quiver" "$@"; }

rm -rf "$repo"
mkdir -p "$demo"
cd "$demo"
echo "The tour runs in $demo"

step "Scaffold the quickstart repository (definitions + generated Parquet data), a Git repository of its own"
run init rides
cd "$repo"
git add -A && git -c user.name=demo -c user.email=demo@example.com commit -qm "feature definitions"
echo "\$ git ls-files    # the definitions; generated data and outputs are in .gitignore"
git ls-files

step "Validate the definitions"
run validate

step "Plan against the empty registry"
run plan

step "Apply: registry version 1, tied to the Git commit"
run apply --author demo

step "Apply again: nothing changed, nothing written"
run apply --author demo

step "Read the registry"
run registry list
run registry describe ranking_v1

step "A point-in-time training set: each labelled moment joined with the features known then"
run training-set --entities data/driver_labels.parquet \
  --features driver_hourly:conv_rate,driver_hourly:acc_rate,driver_hourly:embedding \
  --out train.parquet --preview 8
echo "(driver 9999 is unknown, and one row comes 59h after the last stats, beyond the 48h ttl: their features are null)"

step "As of what was known: the same set built as of a date before any stats row was created (no features)"
run training-set --entities data/driver_labels.parquet \
  --features driver_hourly:conv_rate --as-of 2000-01-01 \
  --out train_as_of.parquet --preview 3

step "No label table yet: a spine of every driver twice a day over the last two days, generated from the view"
run training-set --spine driver_hourly --start "$(date -u -d '2 days ago' +%Y-%m-%dT12:00:00Z)" --end now --every 12h \
  --features driver_hourly:conv_rate --out train_spine.parquet --preview 4

step "Compact: sort each view once; training sets over unchanged files then merge-join the copies instead of sorting"
run compact
run training-set --entities data/driver_labels.parquet \
  --features driver_hourly:conv_rate,driver_hourly:acc_rate,driver_hourly:embedding \
  --out train_merged.parquet --preview 8
echo "(the same rows as the first training set; quiver training-set --explain names the copies it merges)"

step "On-demand features in a training set: driver_scores:adjusted_conv = conv_rate × the label's surge (CEL)"
run training-set --entities data/driver_labels.parquet \
  --features driver_hourly:conv_rate,driver_scores:adjusted_conv \
  --out train_scores.parquet --preview 5

step "Object storage: the data root on an S3-compatible store (an in-memory one on loopback, for the tour)"
(cd "$root" && go build -o "$demo/s3mem" ./scripts/s3mem)
"$demo/s3mem" -load "$repo/data=rides/data" > "$demo/s3.endpoint" &
s3_pid=$!
trap 'kill $s3_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$demo/s3.endpoint" ] && break; sleep 0.1; done
endpoint=$(cat "$demo/s3.endpoint")
rm -rf "$demo/rides-s3"
cp -r "$repo" "$demo/rides-s3"
sed -i 's#data_root: data #data_root: s3://quiver/rides/data #' "$demo/rides-s3/quiver.yaml"
printf 'storage:\n  s3: {endpoint: %s, region: us-east-1, path_style: true}\n' "$endpoint" >> "$demo/rides-s3/quiver.yaml"
echo "\$ grep -A1 -E 'data_root|^storage' quiver.yaml    # a copy of the repository, its data in the bucket"
grep -A1 -E 'data_root|^storage' "$demo/rides-s3/quiver.yaml"
export AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo AWS_EC2_METADATA_DISABLED=true
(cd "$demo/rides-s3" && run training-set --entities s3://quiver/rides/data/driver_labels.parquet \
  --features driver_hourly:conv_rate,driver_hourly:acc_rate,driver_hourly:embedding \
  --out s3://quiver/rides/sets/train.parquet)
(cd "$demo/rides-s3" && run training-set --entities s3://quiver/rides/data/driver_labels.parquet \
  --features driver_hourly:conv_rate,driver_hourly:acc_rate,driver_hourly:embedding \
  --out "$demo/train-s3.parquet")
cmp train.parquet "$demo/train-s3.parquet"
echo "(the same bytes as the local training set: the objects were staged into the local object cache, as slices of the columns and row groups the join reads where that pays)"
kill $s3_pid
wait $s3_pid 2>/dev/null || true
trap - EXIT
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_EC2_METADATA_DISABLED

step "Materialize: the latest row of every driver into the embedded online store"
run materialize --incremental
run materialize --incremental
echo "(the second run starts at the first one's watermark: nothing new)"

step "Online lookup: columnar values with a status each"
run online --entity driver_id=1001,1002,9999 --features driver_hourly:conv_rate,driver_hourly:acc_rate,driver_hourly:embedding

step "The same on-demand expression at request time: surge comes with the request"
run online --entity driver_id=1001,1002,9999 --features driver_hourly:conv_rate,driver_scores:adjusted_conv --request surge=1.5,2,2

step "Serve over gRPC, HTTP and Arrow Flight (quiver serve, in the background)"
grpc=127.0.0.1:${QUIVER_DEMO_GRPC_PORT:-16566}
http=127.0.0.1:${QUIVER_DEMO_HTTP_PORT:-16567}
flight=127.0.0.1:${QUIVER_DEMO_FLIGHT_PORT:-16568}
"$quiver" serve --grpc "$grpc" --http "$http" --flight "$flight" --drain-delay 1s 2>"$demo/serve.log" &
serve_pid=$!
trap 'kill $serve_pid 2>/dev/null || true' EXIT
for _ in $(seq 50); do curl -fs "http://$http/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "\$ curl -s -X POST http://$http/v1/online-features -d '{\"entities\": {\"driver_id\": [1001, 9999]}, \"features\": [\"driver_hourly:conv_rate\"]}'"
curl -s -X POST "http://$http/v1/online-features" -d '{"entities": {"driver_id": [1001, 9999]}, "features": ["driver_hourly:conv_rate"]}'
echo "\$ curl -s -X POST http://$http/v1/online-features -d '{\"entities\": {\"driver_id\": [1001]}, \"features\": [\"driver_hourly:conv_rate\", \"driver_scores:adjusted_conv\"], \"request_context\": {\"surge\": [1.5]}}'"
curl -s -X POST "http://$http/v1/online-features" -d '{"entities": {"driver_id": [1001]}, "features": ["driver_hourly:conv_rate", "driver_scores:adjusted_conv"], "request_context": {"surge": [1.5]}}'
echo
echo "\$ curl -s -X POST http://$http/get-online-features -d '{\"entities\": {\"driver_id\": [1001, 9999]}, \"features\": [\"driver_hourly:conv_rate\"]}'    # the same, as Feast's feature server answers"
curl -s -X POST "http://$http/get-online-features" -d '{"entities": {"driver_id": [1001, 9999]}, "features": ["driver_hourly:conv_rate"]}'
echo
echo "\$ go run ./examples/online-client -addr $grpc    # the Go SDK over gRPC"
(cd "$root" && go run -tags duckdb_arrow ./examples/online-client -addr "$grpc")
run training-set --entities data/driver_labels.parquet --features driver_hourly:conv_rate,driver_hourly:acc_rate,driver_scores:adjusted_conv --out data/sets/train.arrow
echo "\$ go run ./examples/flight-client -addr $flight -dataset sets/train.arrow    # a training set, a saved one, and batch inference over Arrow Flight"
(cd "$root" && go run -tags duckdb_arrow ./examples/flight-client -addr "$flight" -dataset sets/train.arrow)
if [ -n "${QUIVER_DEMO_PYTHON:-}" ]; then
	echo "\$ python examples/python/tour.py    # the Python client: training sets, a saved set in parts, online, push (and quiver.torch with torch)"
	"$QUIVER_DEMO_PYTHON" "$root/examples/python/tour.py" --flight "grpc://$flight" --http "http://$http"
else
	echo "(no Python environment: the Python client's tour is left out; make demo makes one)"
fi
step "Graceful stop (rolling restarts): on SIGTERM serve reports not ready at once, answers for the drain delay, then drains"
echo "\$ kill -TERM $serve_pid; curl -s http://$http/readyz; curl -s -X POST http://$http/v1/online-features …"
kill -TERM $serve_pid
for _ in $(seq 50); do grep -q draining "$demo/serve.log" && break; sleep 0.02; done
curl -s "http://$http/readyz"
curl -s -X POST "http://$http/v1/online-features" -d '{"entities": {"driver_id": [1001]}, "features": ["driver_hourly:conv_rate"]}'
echo
wait $serve_pid 2>/dev/null || true
grep -E 'draining|shutting down' "$demo/serve.log" | sed 's/^time=[^ ]* //'
trap - EXIT

step "Streaming: quiver dev runs a Kafka-protocol broker, the stream materializer and the servers in one process"
kport=${QUIVER_DEMO_KAFKA_PORT:-19092}
"$quiver" dev --kafka-port "$kport" --grpc "$grpc" --http "$http" --flight off 2>"$demo/dev.log" &
dev_pid=$!
trap 'kill $dev_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fs "http://$http/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
echo "\$ go run ./examples/stream-producer -brokers 127.0.0.1:$kport -http $http -entities now.parquet -poison"
(cd "$root" && go run -tags duckdb_arrow ./examples/stream-producer -brokers "127.0.0.1:$kport" -http "$http" -entities "$repo/now.parquet" -poison)
echo "\$ curl -s -X POST http://$http/v1/online-features -d '{\"entities\": {\"driver_id\": [1001]}, \"features\": [\"driver_trips:*\", \"driver_last_trip:*\"]}'"
curl -s -X POST "http://$http/v1/online-features" -d '{"entities": {"driver_id": [1001]}, "features": ["driver_trips:*", "driver_last_trip:*"]}'
echo
ts=$(date -u +%Y-%m-%dT%H:%M:%S.%6NZ)
push='{"source": "driver_app", "rows": [{"driver_id": 1001, "available": true, "battery": 0.8, "ts": "'$ts'"}, {"driver_id": 1002, "available": false, "battery": 0.15, "ts": "'$ts'"}]}'
echo "\$ curl -s -X POST http://$http/v1/push -d '$push'    # the push API: same path, online + offline log"
curl -s -X POST "http://$http/v1/push" -d "$push"
echo
echo "\$ curl -s -X POST http://$http/v1/online-features -d '{\"entities\": {\"driver_id\": [1001, 1002]}, \"features\": [\"driver_status:*\", \"driver_pings:pings_10m\"]}'"
curl -s -X POST "http://$http/v1/online-features" -d '{"entities": {"driver_id": [1001, 1002]}, "features": ["driver_status:*", "driver_pings:pings_10m"]}'
echo
echo "\$ curl -s -X POST http://$http/v1/push -d '{\"source\": \"driver_app\", \"rows\": [{\"driver_id\": 1001, \"battery\": \"full\"}]}'    # a bad row is refused whole"
curl -s -X POST "http://$http/v1/push" -d '{"source": "driver_app", "rows": [{"driver_id": 1001, "battery": "full"}]}'
echo
echo "\$ curl -s http://$http/metrics | grep -E '^quiver_stream_(events_total|dead_letters_total|freshness_seconds_count)'"
curl -s "http://$http/metrics" | grep -E '^quiver_stream_(events_total|dead_letters_total|freshness_seconds_count)' || true
kill -TERM $dev_pid   # flushes the offline log and commits the offsets
wait $dev_pid 2>/dev/null || true
trap - EXIT

step "The same values in a training set: the stream's offline log, windows by the same rule"
run training-set --entities now.parquet --features 'driver_trips:*,driver_last_trip:*' --out "$demo/stream_training.parquet" --preview 3

step "Verify: the online store equals the point-in-time join at the stream's watermark"
run verify --views driver_trips,driver_last_trip,driver_status,driver_pings

step "A typo is caught with its file, line and a suggestion"
sed -i 's/source: driver_stats/source: driver_stat/' features/drivers.yaml
run validate || echo "(exit status $?)"
git checkout -q features/drivers.yaml

step "Change definitions: a longer ttl (safe) and a feature's type (breaking)"
sed -i 's/ttl: 48h /ttl: 72h /; s/{name: acc_rate, type: float32/{name: acc_rate, type: float64/' features/drivers.yaml
git diff --stat
run plan
run plan --deny-breaking >/dev/null || echo "(plan --deny-breaking exit status $?: CI would stop here)"
run apply --author demo || echo "(exit status $?)"
git -c user.name=demo -c user.email=demo@example.com commit -qam "acc_rate becomes float64, ttl 72h"
run apply --author demo --allow-breaking

step "History: every version stays readable"
run registry history
run registry describe driver_hourly --version 1 | sed -n 1,8p

step "Moving from Feast: a Feast registry (written by feast apply) becomes a Quiver repository"
(cd "$demo" && run import feast --registry "$root/internal/feast/testdata/registry.db" --out from-feast | sed -n 1,40p)
(cd "$demo/from-feast" && run validate)
echo "(quiver serve also answers Feast's clients: POST /get-online-features, feast.serving.ServingService, and Feast's remote offline store over Flight)"

step "The repository is clean: everything the tour generated is ignored"
echo "\$ git status --short"
status=$(git status --short)
if [ -n "$status" ]; then
  printf '%s\n' "$status"
  echo "the tour left the repository dirty" >&2
  exit 1
fi
echo "(nothing to commit; the tour's repository stays in $demo)"
