#!/usr/bin/env python3
"""extra.py: the scenarios the shared peerbench does not have, measured the same way.

  h2-challenge   HTTP/2 over TLS, h2load: the challenge answer (10 connections x 10 streams)
  h2-proxy       HTTP/2 over TLS, h2load: a proxied 1 KiB page (10 connections x 10 streams)
  body-1m-http   HTTP/1.1, wrk: a proxied 1 MiB body (16 keep-alive connections)

It imports ../shared/bench/peerbench.py (PEERBENCH=path overrides) and uses its peers, origin,
certificate, CPU pinning and CPU accounting: every server runs pinned to CPU 0 with one worker,
the client (and the origin) on CPU 1, and the figure that counts is requests per server
CPU-second (utime+stime of the server's whole session during the run). The origin is
peerbench's nginx, with one more location serving a 1 MiB file for body-1m-http.

Usage: benches/extra.py --target-cmd CMD --target-http H:P --target-https H:P --setup-cmd CMD
       [--peers nginx,haproxy,caddy] [--scenarios ...] [--seconds 5] [--rounds 3] [--json F]
benches/peer.sh --extra runs it with dcv-proxy as the target (after building the release binary).
"""
import argparse, importlib.util, json, os, re, statistics, subprocess, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
PB_PATH = os.environ.get("PEERBENCH", os.path.join(HERE, "..", "..", "shared", "bench", "peerbench.py"))
spec = importlib.util.spec_from_file_location("peerbench", PB_PATH)
pb = importlib.util.module_from_spec(spec)
spec.loader.exec_module(pb)

BIG_PATH = "/big-1m.bin"
BIG_SIZE = 1 << 20
SCENARIOS = {
    # name: (tool, scheme, path, connections, streams per connection)
    "h2-challenge": ("h2load", "https", f"/.well-known/acme-challenge/{pb.TOKEN}", 10, 10),
    "h2-proxy": ("h2load", "https", "/index.html", 10, 10),
    "body-1m-http": ("wrk", "http", BIG_PATH, 16, 1),
}


def origin_with_big_file():
    """peerbench's origin, plus a location that serves a 1 MiB file (sendfile)."""
    www = os.path.join(pb.WORK, "www")
    os.makedirs(www, exist_ok=True)
    with open(os.path.join(www, BIG_PATH.lstrip("/")), "wb") as f:
        f.write(bytes((i * 7 + 3) % 251 for i in range(BIG_SIZE)))
    conf = os.path.join(pb.WORK, "origin.conf")
    text = open(conf).read()
    marker = "location / {"
    assert marker in text, "peerbench's origin configuration changed"
    text = text.replace(marker, f"location = {BIG_PATH} {{ root {www}; }} {marker}", 1)
    open(conf, "w").write(text)


def parse_h2load(out):
    done = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                     r"(\d+) errored", out)
    status = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    if not (done and status):
        raise RuntimeError(f"cannot read h2load's output:\n{out}")
    total = int(done.group(3))
    bad = int(done.group(5)) + int(done.group(6)) + int(status.group(3)) + int(status.group(4))
    lat = re.search(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)", out)
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}
    mean_ms = float(lat.group(5)) * unit[lat.group(6)] if lat else None
    return {"total": total, "bad": bad, "mean_ms": mean_ms}


def measure(tool, url, conns, streams, seconds, sid, origin_sid):
    if tool == "h2load":
        cmd = ["taskset", "-c", str(pb.CLIENT_CPU), "h2load", "-c", str(conns), "-m", str(streams),
               "-t", "1", "-D", str(seconds), "-H", ":authority: bench.test", url]
    else:
        cmd = ["taskset", "-c", str(pb.CLIENT_CPU), "wrk", "-t1", f"-c{conns}", f"-d{seconds}s",
               "--latency", "-H", "Host: bench.test", url]
    cpu0, o0, t0 = pb.session_cpu(sid), pb.session_cpu(origin_sid), time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    wall = time.monotonic() - t0
    cpu, ocpu = pb.session_cpu(sid) - cpu0, pb.session_cpu(origin_sid) - o0
    if tool == "h2load":
        res = parse_h2load(p.stdout)
    else:
        res = pb.parse_wrk(p.stdout)
        res["bad"] = res["non2xx"] + res["sock_errors"]
    res.update(server_cpu=cpu, origin_cpu=ocpu, wall=wall,
               per_cpu_s=res["total"] / cpu if cpu > 0 else None, raw=p.stdout + p.stderr)
    return res


def check_big(addr, who):
    import urllib.request
    req = urllib.request.Request(f"http://{addr}{BIG_PATH}", headers={"Host": "bench.test"})
    with urllib.request.urlopen(req, timeout=10) as r:
        body = r.read()
    if len(body) != BIG_SIZE or body[:4] != bytes((i * 7 + 3) % 251 for i in range(4)):
        sys.exit(f"extra.py: {who} does not relay the 1 MiB body ({len(body)} bytes)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--target-cmd", required=True)
    ap.add_argument("--target-http", required=True)
    ap.add_argument("--target-https", required=True)
    ap.add_argument("--setup-cmd")
    ap.add_argument("--peers", default="nginx,haproxy,caddy")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json")
    args = ap.parse_args()
    for t in ("h2load", "wrk", "taskset", "nginx"):
        pb.need(t)
    cert, key = pb.write_cert(pb.WORK)
    pb.peer_configs(cert, key)
    origin_with_big_file()
    names = [n for n in args.peers.split(",") if n]
    scen = [s for s in args.scenarios.split(",") if s]
    procs = pb.start_peers(names)
    target = None
    try:
        env = dict(os.environ, PEERBENCH_ORIGIN=pb.ORIGIN, PEERBENCH_TOKEN=pb.TOKEN,
                   PEERBENCH_KEY_AUTH=pb.KEY_AUTH, PEERBENCH_CERT=cert, PEERBENCH_KEY=key,
                   PEERBENCH_DIR=pb.WORK)
        target = pb.start(["sh", "-c", args.target_cmd], pb.SERVER_CPU, f"{pb.WORK}/target.log", env)
        for a in (args.target_http, args.target_https):
            if not pb.wait_port(a, 30, proc=target):
                sys.exit(f"extra.py: target did not open {a}; see {pb.WORK}/target.log")
        if args.setup_cmd:
            subprocess.run(["sh", "-c", args.setup_cmd], env=env, check=True)
        servers = {"target": (args.target_http, args.target_https)}
        for n in names:
            servers[n] = (f"127.0.0.1:{pb.PEERS[n][0]}", f"127.0.0.1:{pb.PEERS[n][1]}")
        for who, (h, s) in servers.items():
            pb.check(h, s, who)
            check_big(h, who)
        sids = {"target": target.pid, **{n: procs[n].pid for n in names}}
        results = {s: {w: [] for w in servers} for s in scen}
        order = list(servers)
        for r in range(args.rounds):
            rot = order[r % len(order):] + order[:r % len(order)]
            for s in scen:
                tool, scheme, path, conns, streams = SCENARIOS[s]
                for who in rot:
                    h, hs = servers[who]
                    addr = h if scheme == "http" else hs
                    pb.wait_quiet()
                    res = measure(tool, f"{scheme}://{addr}{path}", conns, streams, args.seconds,
                                  sids[who], procs["origin"].pid)
                    if res["bad"] or not res["total"]:
                        sys.exit(f"extra.py: {who} failed {s}: {res['bad']} of {res['total']}\n{res['raw']}")
                    results[s][who].append(res)
                    print(f"round {r+1} {s:13} {who:8} {res['total'] / args.seconds:>9.0f} req/s "
                          f"{res['per_cpu_s']:>9.0f} req/cpu-s  server cpu {res['server_cpu']:.2f}s",
                          file=sys.stderr)
        print(f"\n| scenario | server | req per server CPU-second (median of {args.rounds}) | "
              f"target ÷ server, req per CPU-s |")
        print("|---|---|---:|---:|")
        summary = {}
        for s, by in results.items():
            summary[s] = {}
            for who, runs in by.items():
                eff = statistics.median(r["per_cpu_s"] for r in runs)
                ratio = None
                if who != "target":
                    ratio = statistics.median(a["per_cpu_s"] / b["per_cpu_s"]
                                              for a, b in zip(by["target"], runs))
                summary[s][who] = {"per_cpu_s": eff, "target_ratio_per_cpu_s": ratio,
                                   "runs": [{k: v for k, v in r.items() if k != "raw"} for r in runs]}
                print(f"| {s} | {who} | {eff:.0f} | {'' if ratio is None else f'{ratio:.2f}'} |")
        if args.json:
            json.dump(summary, open(args.json, "w"), indent=2)
    finally:
        pb.stop(target)
        for p in procs.values():
            pb.stop(p)


if __name__ == "__main__":
    main()
