#!/usr/bin/env bash
# pebble_scale.sh [N] [SECONDS]: the renewer on a real CA at scale. One node with N
# `[[certificate]]`s (default 300), each one name, HTTP-01, against Debian's Pebble issuing
# certificates valid for VALIDITY seconds (default 600: renewed at half their life, like the
# 160-hour `shortlived` profile, schedule::SHORT_LIFETIME), for SECONDS (default 480).
#
# Every SAMPLE seconds (default 10) it reads the node's admin API and prints: certificates
# issued, valid orders in the last minute (from dcv_acme_orders_total), and the least remaining
# lifetime of any served certificate at that moment. At the end: orders per minute (overall and
# once every certificate was issued), the least remaining lifetime seen, and how many served
# certificates ever expired.
#
# Knobs (environment): VALIDITY, SAMPLE, BUDGET (acme.max_new_orders, default 0 = no limit:
# Pebble has none, and 300 per 3 h would stop the run at 300 orders; set it with WINDOW, e.g.
# BUDGET=60 WINDOW=1m, to watch the budget bind), SELF_CHECK (local or probe, default local: the
# probe's DNS and CAA checks per name measure the probe, not the scheduler), DCV_PROXY (a binary;
# default: cargo build --release and target/release/dcv-proxy).
#
# Everything listens on 127.0.0.1 (free ports picked at start) and is stopped by PID on exit.
# Needs pebble, pebble-challtestsrv, openssl, curl, jq (scripts/install-deps test).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-300}
duration=${2:-480}
validity=${VALIDITY:-600}
sample=${SAMPLE:-10}
budget=${BUDGET:-0}
window=${WINDOW:-3h}
self_check=${SELF_CHECK:-local}

for tool in pebble pebble-challtestsrv openssl curl jq; do
  command -v "$tool" >/dev/null || { echo "pebble_scale: $tool is missing (scripts/install-deps test)" >&2; exit 1; }
done
if [ -z "${DCV_PROXY:-}" ]; then
  cargo build --release --locked
  DCV_PROXY=target/release/dcv-proxy
fi

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

# Free loopback ports, each checked by binding it.
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}
p_http=$(free_port); p_https=$(free_port); p_admin=$(free_port)
p_acme=$(free_port); p_mgmt=$(free_port); p_dns=$(free_port); p_cts=$(free_port)

# Pebble's own API certificate, from a CA made here.
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days 2 -keyout "$work/ca.key" -out "$work/ca.pem" \
  -subj "/CN=pebble-scale-ca" -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -keyout "$work/api.key" -out "$work/api.csr" -subj "/CN=localhost" 2>/dev/null
printf 'basicConstraints=critical,CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$work/api.ext"
openssl x509 -req -in "$work/api.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 2 -sha256 -extfile "$work/api.ext" -out "$work/api.pem" 2>/dev/null

cat > "$work/pebble.json" <<JSON
{"pebble": {
  "listenAddress": "127.0.0.1:$p_acme", "managementListenAddress": "127.0.0.1:$p_mgmt",
  "certificate": "$work/api.pem", "privateKey": "$work/api.key",
  "httpPort": $p_http, "tlsPort": $p_https, "ocspResponderURL": "",
  "externalAccountBindingRequired": false, "domainBlocklist": [],
  "certificateValidityPeriod": $validity }}
JSON
pebble-challtestsrv -management "127.0.0.1:$p_cts" -dns01 "127.0.0.1:$p_dns" \
  -http01 "" -https01 "" -tlsalpn01 "" -defaultIPv4 127.0.0.1 -defaultIPv6 "" \
  > "$work/challtestsrv.log" 2>&1 &
pids+=($!)
PEBBLE_VA_NOSLEEP=1 PEBBLE_WFE_NONCEREJECT=0 PEBBLE_AUTHZREUSE=0 \
  pebble -config "$work/pebble.json" -dnsserver "127.0.0.1:$p_dns" > "$work/pebble.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  curl -sf --cacert "$work/ca.pem" "https://127.0.0.1:$p_acme/dir" >/dev/null && break
  sleep 0.1
done

{
  cat <<CONF
state_dir = "$work/state"
[http]
listen = ["127.0.0.1:$p_http"]
[https]
listen = ["127.0.0.1:$p_https"]
[admin]
listen = "127.0.0.1:$p_admin"
[server]
log_level = "warn"
[probe]
interval = "0s"
resolvers = ["127.0.0.1:$p_dns"]
http_port = $p_http
https_port = $p_https
[acme]
directory = "https://127.0.0.1:$p_acme/dir"
ca_bundle = "$work/ca.pem"
terms_agreed = true
self_check = "$self_check"
max_new_orders = $budget
new_orders_window = "$window"
retry_schedule = ["5s", "30s", "1m"]
CONF
  for i in $(seq 1 "$n"); do
    printf '[[certificate]]\nnames = ["c%d.scale.test"]\n' "$i"
  done
} > "$work/dcv.toml"
"$DCV_PROXY" run --config "$work/dcv.toml" > "$work/dcv.log" 2>&1 &
pids+=($!)
admin="http://127.0.0.1:$p_admin"
for _ in $(seq 100); do curl -sf "$admin/healthz" >/dev/null && break; sleep 0.1; done

echo "pebble_scale: $n certificates, validity ${validity}s, ${duration}s, budget $budget per $window, self-check $self_check"
printf '%8s %8s %12s %20s\n' "t (s)" issued "orders/min" "least left (s)"
start=$(date +%s)
declare -a history=()   # "t valid_orders" per sample
min_left=""
all_issued_at=""
all_issued_orders=0
expired=0
while :; do
  now=$(date +%s); t=$((now - start))
  [ "$t" -ge "$duration" ] && break
  certs=$(curl -sf "$admin/v1/certificates" || echo '{"certificates":[]}')
  issued=$(jq '[.certificates[] | select(.source == "acme")] | length' <<<"$certs")
  left=$(jq '[.certificates[] | select(.source == "acme") | .expires_in_seconds] | min // empty' <<<"$certs")
  gone=$(jq '[.certificates[] | select(.source == "acme" and .expires_in_seconds == 0)] | length' <<<"$certs")
  expired=$((expired > gone ? expired : gone))
  valid=$(curl -sf "$admin/metrics" | awk '/^dcv_acme_orders_total\{.*result="valid"/ {s += $2} END {print s + 0}')
  history+=("$t $valid")
  # Valid orders in the last 60 s of samples.
  per_min=0
  for h in "${history[@]}"; do
    read -r ht hv <<<"$h"
    if [ $((t - ht)) -le 60 ]; then per_min=$((valid - hv)); break; fi
  done
  if [ -n "$left" ] && { [ -z "$min_left" ] || [ "$left" -lt "$min_left" ]; }; then min_left=$left; fi
  if [ -z "$all_issued_at" ] && [ "$issued" -ge "$n" ]; then all_issued_at=$t; all_issued_orders=$valid; fi
  printf '%8d %8d %12d %20s\n' "$t" "$issued" "$per_min" "${left:--}"
  sleep "$sample"
done
valid=$(curl -sf "$admin/metrics" | awk '/^dcv_acme_orders_total\{.*result="valid"/ {s += $2} END {print s + 0}')
failed=$(curl -sf "$admin/metrics" | awk '/^dcv_acme_orders_total\{.*result="failed"/ {s += $2} END {print s + 0}')
end=$(($(date +%s) - start))
echo "valid orders: $valid, failed: $failed, in ${end}s: $(awk -v v="$valid" -v s="$end" 'BEGIN {printf "%.1f", v * 60 / s}') orders/min"
if [ -n "$all_issued_at" ]; then
  after=$((end - all_issued_at))
  echo "every certificate issued after ${all_issued_at}s; then $((valid - all_issued_orders)) orders (renewals) in ${after}s: $(awk -v v="$((valid - all_issued_orders))" -v s="$after" 'BEGIN {if (s > 0) printf "%.1f", v * 60 / s; else print "-"}') orders/min"
else
  echo "not every certificate was issued within the run"
fi
echo "least remaining lifetime of a served certificate: ${min_left:--} s of $validity s; served certificates seen expired: $expired"
