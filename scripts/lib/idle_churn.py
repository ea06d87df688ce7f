#!/usr/bin/env python3
"""idle_churn.py HOST:PORT HOST_HEADER PATH EXPECT CONNECTIONS SECONDS: keep-alive clients that
pause between requests the way browsers do, so that dcv-proxy parks their connections and
resumes them (it parks a plain-HTTP connection idle for 0.1 s). Each connection sends a request,
checks a 200 whose body starts with EXPECT, then waits 0 (30 % of the time) or 50–400 ms, and
closes and reconnects now and then (2 %). Prints "ok N bad M connections K" at the end; every
failure is also printed to stderr."""
import asyncio, random, sys, time


async def client(host, port, request, expect, until, tally):
    reader = writer = None
    while time.monotonic() < until:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
                tally["connections"] += 1
            writer.write(request)
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n")
                          if l.lower().startswith(b"content-length:"))
            body = await asyncio.wait_for(reader.readexactly(length), 10)
            if head.startswith(b"HTTP/1.1 200") and body.startswith(expect):
                tally["ok"] += 1
            else:
                tally["bad"] += 1
                print(f"idle_churn: unexpected answer {head[:40]!r}", file=sys.stderr)
            if random.random() >= 0.3:
                await asyncio.sleep(random.uniform(0.05, 0.4))
            if random.random() < 0.02:
                writer.close()
                writer = None
        except Exception as e:  # a failed exchange is counted, and the client reconnects
            tally["bad"] += 1
            print(f"idle_churn: {e!r}", file=sys.stderr)
            writer = None
    if writer is not None:
        writer.close()


async def main():
    addr, host_header, path, expect, n, seconds = sys.argv[1:7]
    host, port = addr.rsplit(":", 1)
    request = f"GET {path} HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode()
    tally = {"ok": 0, "bad": 0, "connections": 0}
    until = time.monotonic() + float(seconds)
    await asyncio.gather(*(client(host, int(port), request, expect.encode(), until, tally)
                           for _ in range(int(n))))
    print(f"ok {tally['ok']} bad {tally['bad']} connections {tally['connections']}", flush=True)


asyncio.run(main())
