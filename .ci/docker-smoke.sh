#!/usr/bin/env bash
# docker-smoke.sh: build the image from a clean context, run it with a mounted tokens file, and
# prove end to end that it serves, with the README's `docker run` flags (a token file on /config,
# a volume on /data): /healthz, the image's HEALTHCHECK, a JSONL watch receiving a
# published event, and a `docker stop` that ends quickly with exit code 0.
#
#   bash .ci/docker-smoke.sh
#
# Needs bash, curl and root (docker-env.sh may install and start the engine). Everything listens
# on 127.0.0.1 only. The docker-env.sh helper is looked up in ../shared/tools next to the
# checkout; set SHARED_DIR to use another place.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
SHARED_DIR=${SHARED_DIR:-$(dirname "$REPO")/shared}
STOP_LIMIT_MS=5000 # `docker stop` would SIGKILL after 10 s; a clean shutdown is far quicker

started=$(date +%s)
say() { echo "docker-smoke: $*"; }
fail() {
  say "$*" >&2
  exit 1
}

stage=setup
work=$(mktemp -d)
tag="gitpod-event-server-smoke:$(date +%s)-$$"
name="gitpod-event-server-smoke-$(date +%s)-$$"
volume="$name-data"
watch_pid=""
container_started=0

cleanup() {
  local status=$?
  trap - EXIT
  if [ -n "$watch_pid" ]; then kill "$watch_pid" 2>/dev/null || true; fi
  if [ "$status" -ne 0 ]; then
    if [ "$container_started" -eq 1 ]; then
      say "container logs:" >&2
      docker logs "$name" 2>&1 | tail -n 40 >&2 || true
    fi
    if [ -s "$work/build.log" ] && [ "$stage" = build ]; then
      say "build log:" >&2
      tail -n 40 "$work/build.log" >&2
    fi
    if [ -f "$work/watch.out" ]; then
      say "watch output:" >&2
      tail -n 20 "$work/watch.out" "$work/watch.err" >&2 || true
    fi
  fi
  if [ "$container_started" -eq 1 ]; then docker rm -f "$name" >/dev/null 2>&1 || true; fi
  docker volume rm -f "$volume" >/dev/null 2>&1 || true
  docker rmi -f "$tag" >/dev/null 2>&1 || true
  rm -rf "$work"
  local took=$(($(date +%s) - started))
  if [ "$status" -eq 0 ]; then
    echo "docker-smoke: PASS (${took}s)"
  else
    echo "docker-smoke: FAIL at stage '$stage' (${took}s)" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

command -v curl >/dev/null || fail "curl is required"
[ -f "$SHARED_DIR/tools/docker-env.sh" ] || fail "no $SHARED_DIR/tools/docker-env.sh (set SHARED_DIR)"

stage=engine
bash "$SHARED_DIR/tools/docker-env.sh"

stage=build
say "building $tag"
build_started=$(date +%s)
docker build -t "$tag" "$REPO" >"$work/build.log" 2>&1
say "built in $(($(date +%s) - build_started))s, $(docker image inspect -f '{{.Size}}' "$tag" |
  awk '{printf "%.0f MB", $1 / 1000000}')"

stage=config
uuid() { cat /proc/sys/kernel/random/uuid; }
secret() { od -An -tx1 -N24 /dev/urandom | tr -d ' \n'; }
org=$(uuid)
member_token=$(secret)
publisher_token=$(secret)
mkdir -p "$work/config"
# As the README's token file: only the tokens' SHA-256 in the file.
sha() { printf %s "$1" | sha256sum | cut -d' ' -f1; }
cat >"$work/config/tokens.json" <<EOF
{"tokens":[
  {"sha256":"$(sha "$member_token")","subject":"$(uuid)","organization":"$org","role":"member"},
  {"sha256":"$(sha "$publisher_token")","subject":"$(uuid)","organization":"$org","role":"publisher"}
]}
EOF
# The server runs as the image's `node` user (uid 1000): it must be able to read the mount.
chmod 0755 "$work" "$work/config"
chmod 0644 "$work/config/tokens.json"

stage=run
# --health-interval: run the image's own HEALTHCHECK command every second, so that it is tested
# here without waiting for its production interval.
# The README's flags: the token file read-only on /config, a named volume on /data (the SQLite
# store), 127.0.0.1 only.
docker run -d --name "$name" -p 127.0.0.1:0:8080 --health-interval 1s \
  -v "$work/config:/config:ro" -e AUTH_TOKENS_FILE=/config/tokens.json \
  -v "$volume:/data" \
  "$tag" >/dev/null
container_started=1
hostport=$(docker port "$name" 8080/tcp | grep -m1 '^127\.0\.0\.1:' || true)
[ -n "$hostport" ] || fail "no 127.0.0.1 port published for 8080/tcp"
base="http://$hostport"
say "container $name on $base"

stage=healthz
deadline=$(($(date +%s) + 30))
until [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/healthz" || true)" = 200 ]; do
  [ "$(docker inspect -f '{{.State.Running}}' "$name")" = true ] || fail "container exited"
  [ "$(date +%s)" -lt "$deadline" ] || fail "/healthz not 200 within 30 s"
  sleep 0.2
done
say "/healthz 200 after $(($(date +%s) - deadline + 30))s"

stage=auth
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -X POST \
  "$base/api/gitpod.v1.EventService/WatchEvents" -H 'Content-Type: application/jsonl' -d '{}')
[ "$code" = 401 ] || fail "a watch without a token got HTTP $code, want 401"

publish() { # publish <resourceId> <operation>
  curl -sS --fail-with-body --max-time 5 -o "$work/publish.out" -X POST \
    "$base/eventservice.ingest.v1.IngestService/Publish" \
    -H "Authorization: Bearer $publisher_token" -H 'Content-Type: application/json' \
    -d "{\"events\":[{\"resourceType\":\"RESOURCE_TYPE_PROJECT\",\"operation\":\"$2\",\"resourceId\":\"$1\",\"organizationId\":\"$org\"}]}"
}
seen() { grep -qF "\"resourceId\":\"$1\"" "$work/watch.out"; }

stage=watch
curl -sS -N --max-time 120 -X POST "$base/api/gitpod.v1.EventService/WatchEvents" \
  -H "Authorization: Bearer $member_token" -H 'Content-Type: application/jsonl' -d '{}' \
  >"$work/watch.out" 2>"$work/watch.err" &
watch_pid=$!
# The watch is connected once an event published now reaches it: publish a marker until it does.
marker=$(uuid)
deadline=$(($(date +%s) + 15))
until seen "$marker"; do
  kill -0 "$watch_pid" 2>/dev/null || fail "the watch ended before it was connected"
  [ "$(date +%s)" -lt "$deadline" ] || fail "marker event not seen by the watch within 15 s"
  publish "$marker" RESOURCE_OPERATION_UPDATE || fail "publish of the marker failed: $(cat "$work/publish.out")"
  sleep 0.2
done
say "watch connected"

stage=publish
resource=$(uuid)
publish "$resource" RESOURCE_OPERATION_CREATE || fail "publish failed: $(cat "$work/publish.out")"
deadline=$(($(date +%s) + 5))
until seen "$resource"; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "published event $resource not seen by the watch within 5 s"
  sleep 0.1
done
line=$(grep -F "\"resourceId\":\"$resource\"" "$work/watch.out")
case $line in
*'"resourceType":"RESOURCE_TYPE_PROJECT"'*'"RESOURCE_OPERATION_CREATE"'* | \
  *'"RESOURCE_OPERATION_CREATE"'*'"resourceType":"RESOURCE_TYPE_PROJECT"'*) ;;
*) fail "unexpected watch line: $line" ;;
esac
say "watch received: $line"

stage=healthcheck
deadline=$(($(date +%s) + 15))
until [ "$(docker inspect -f '{{.State.Health.Status}}' "$name")" = healthy ]; do
  [ "$(date +%s)" -lt "$deadline" ] || fail "HEALTHCHECK not healthy within 15 s: $(docker inspect -f '{{json .State.Health}}' "$name")"
  sleep 0.2
done
say "HEALTHCHECK healthy"

stage=stop
# Stop with the watch still open: the server must end it and exit by itself, well before the
# SIGKILL that `docker stop` sends after 10 s.
stop_started=$(date +%s%N)
docker stop "$name" >/dev/null
stop_ms=$((($(date +%s%N) - stop_started) / 1000000))
exit_code=$(docker inspect -f '{{.State.ExitCode}}' "$name")
say "docker stop took ${stop_ms} ms, exit code $exit_code"
[ "$exit_code" = 0 ] || fail "container exited with $exit_code, want 0"
[ "$stop_ms" -lt "$STOP_LIMIT_MS" ] || fail "docker stop took ${stop_ms} ms, want < ${STOP_LIMIT_MS} ms"
# An open JSONL stream ends by an abort on shutdown, never by a clean end (CONTRACT §4, §7).
watch_status=0
wait "$watch_pid" || watch_status=$?
watch_pid=""
[ "$watch_status" -ne 0 ] || fail "the watch ended cleanly on shutdown; it must be aborted"
say "watch aborted on shutdown (curl exit $watch_status)"
stage=done
