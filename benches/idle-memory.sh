#!/usr/bin/env bash
# idle-memory.sh [N]: resident memory of dcv-proxy and of nginx (one worker each) holding N idle
# keep-alive connections (default 10 000) that each had one validation answer.
# Prints the RSS of each server before and after, in KiB (nginx: master + worker), and the
# anonymous part of it (the rest is mapped program and library pages, shared and reclaimable).
# Read SETTLE seconds (default 3) after the last connection had its answer: dcv-proxy parks a
# connection idle for 0.1 s and returns the memory of a burst of them 1 s after it.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
scripts/install-deps bench
cargo build --release --locked
work=$(mktemp -d)
ulimit -n $((n + 4096))
token=bench-token-0123456789abcdefghijKLMNOP
ka="$token.Zm9vYmFyYmF6cXV4dGh1bWJwcmludF9iZW5jaA"
rss() { local t=0; for p in "$@"; do t=$((t + $(awk '/VmRSS/{print $2}' /proc/$p/status))); done; echo $t; }
anon() { local t=0; for p in "$@"; do t=$((t + $(awk '/RssAnon/{print $2}' /proc/$p/status))); done; echo $t; }

cat > "$work/dcv.toml" <<CONF
state_dir = "$work/state"
[http]
listen = ["127.0.0.1:18290"]
[https]
listen = ["127.0.0.1:18291"]
[admin]
listen = "127.0.0.1:18292"
[server]
threads = 1
log_level = "warn"
[probe]
interval = "0s"
CONF
target/release/dcv-proxy run --config "$work/dcv.toml" > "$work/dcv.log" 2>&1 &
dcv=$!
cat > "$work/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $work/nginx.pid; error_log $work/nginx-error.log;
worker_rlimit_nofile $((n + 4096));
events { worker_connections $((n + 1024)); }
http { access_log off; keepalive_requests 1000000; keepalive_timeout 300s;
  server { listen 127.0.0.1:18293;
    location = /.well-known/acme-challenge/$token { default_type text/plain; return 200 "$ka"; } } }
CONF
nginx -c "$work/nginx.conf" -p "$work" &
ngx=$!
trap 'kill $dcv $ngx 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 100); do [ -s "$work/state/admin.token" ] && curl -fs 127.0.0.1:18292/healthz >/dev/null && break; sleep 0.1; done
jq -n --arg ka "$ka" '{key_authorization: $ka}' | curl -fsS -X PUT -H "Authorization: Bearer $(cat "$work/state/admin.token")" \
  --data-binary @- "http://127.0.0.1:18292/v1/acme/tokens/$token" >/dev/null
sleep 0.5
ngx_pids="$ngx $(pgrep -P $ngx | tr '\n' ' ')"
measure() { # name addr pids…
  local name=$1 addr=$2; shift 2
  local before; before=$(rss "$@")
  local anon_before; anon_before=$(anon "$@")
  coproc HOLD { python3 benches/idle_conns.py "$addr" "$n"; }
  read -r line <&"${HOLD[0]}"
  sleep "${SETTLE:-3}"
  local after; after=$(rss "$@")
  local anon_after; anon_after=$(anon "$@")
  echo "$name: $line connections; RSS before ${before} KiB, with them ${after} KiB, per connection $(( (after - before) * 1024 / n )) bytes; anonymous ${anon_before} → ${anon_after} KiB"
  exec {HOLD[1]}>&-
  wait "$HOLD_PID" 2>/dev/null || true
}
measure dcv-proxy 127.0.0.1:18290 $dcv
measure nginx 127.0.0.1:18293 $ngx_pids
