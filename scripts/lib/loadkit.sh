# Shared by scripts/swap-under-load and scripts/soak (sourced, not run): a dcv-proxy node on
# free loopback ports in a temporary directory, certificates made with openssl, admin calls
# with curl. Everything stays on loopback; every process started is stopped by its PID.

# A free TCP port on 127.0.0.1.
free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# The binary: --bin PATH, else target/release (built here), or target/debug with --quick.
pick_binary() {
  local quick=$1 bin=$2 target=${CARGO_TARGET_DIR:-target}
  if [ -n "$bin" ]; then echo "$bin"; return; fi
  if [ "$quick" = 1 ]; then
    [ -x "$target/debug/dcv-proxy" ] || cargo build --locked >&2
    echo "$target/debug/dcv-proxy"
  else
    cargo build --release --locked >&2
    echo "$target/release/dcv-proxy"
  fi
}

# make_cert DIR NAME CN: a self-signed ECDSA P-256 certificate for CN and its key, and the JSON
# body of PUT /v1/certificates/<id> in DIR/NAME.json.
make_cert() {
  local dir=$1 name=$2 cn=$3
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=$cn" -addext "subjectAltName=DNS:$cn" \
    -keyout "$dir/$name.key" -out "$dir/$name.crt" 2>/dev/null
  jq -n --rawfile c "$dir/$name.crt" --rawfile k "$dir/$name.key" \
    '{certificate: $c, private_key: $k}' > "$dir/$name.json"
}

# start_node DIR CONFIG BIN: starts BIN on CONFIG, logging to DIR/node.log; sets NODE_PID and
# waits for /healthz on $ADMIN.
start_node() {
  local dir=$1 config=$2 bin=$3
  RUST_LOG=${RUST_LOG:-warn} "$bin" --config "$config" run >"$dir/node.log" 2>&1 &
  NODE_PID=$!
  for _ in $(seq 1 300); do
    if curl -sf "http://$ADMIN/healthz" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$NODE_PID" 2>/dev/null; then cat "$dir/node.log" >&2; return 1; fi
    sleep 0.1
  done
  echo "the node did not get ready" >&2
  return 1
}

# admin METHOD PATH [BODY-FILE]: prints the HTTP status.
admin() {
  local method=$1 path=$2 body=${3:-}
  if [ -n "$body" ]; then
    curl -s -o /dev/null -w '%{http_code}' -X "$method" -H "Authorization: Bearer $ADMIN_TOKEN" \
      -H 'Content-Type: application/json' --data-binary "@$body" "http://$ADMIN$path"
  else
    curl -s -o /dev/null -w '%{http_code}' -X "$method" -H "Authorization: Bearer $ADMIN_TOKEN" \
      "http://$ADMIN$path"
  fi
}

# metric NAME_AND_LABELS: the value of one series from /metrics (0 when absent).
metric() {
  curl -s "http://$ADMIN/metrics" | awk -v s="$1" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }'
}

# wrk_errors FILE: the sum of wrk's socket errors and non-2xx/3xx responses in its output.
wrk_errors() {
  awk '/Socket errors/ { gsub(",", ""); n += $4 + $6 + $8 + $10 }
       /Non-2xx or 3xx/ { n += $NF }
       END { print n + 0 }' "$1"
}

# wrk_requests FILE: requests wrk completed.
wrk_requests() {
  awk '/requests in/ { print $1; found = 1 } END { if (!found) print 0 }' "$1"
}
