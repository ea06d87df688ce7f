#!/usr/bin/env bash
# The target command of benches/peer.sh: writes the bench configuration (origin from peerbench's
# PEERBENCH_ORIGIN) and becomes the dcv-proxy process, in the foreground, one worker thread.
set -euo pipefail
dir=$DCV_BENCH_DIR
mkdir -p "$dir/state"
cat > "$dir/bench.toml" <<CONF
state_dir = "$dir/state"
[http]
listen = ["$DCV_BENCH_HTTP"]
[https]
listen = ["$DCV_BENCH_HTTPS"]
[admin]
listen = "$DCV_BENCH_ADMIN"
[server]
threads = 1
log_level = "warn"
[proxy]
default_origin = "$PEERBENCH_ORIGIN"
[probe]
interval = "0s"
CONF
exec "$DCV_BENCH_BIN" run --config "$dir/bench.toml"
