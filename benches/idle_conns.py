#!/usr/bin/env python3
"""idle_conns.py HOST:PORT N [PATH]: open N keep-alive connections, send one request on each,
read its answer, then hold them all open until stdin closes. Prints "ready N" on stdout once
every connection has had its answer (a server keeping 10 000 idle keep-alive connections is the
memory scenario of the performance issue)."""
import asyncio, resource, sys

async def one(host, port, path, sem, held):
    async with sem:
        r, w = await asyncio.open_connection(host, port)
        w.write(f"GET {path} HTTP/1.1\r\nHost: bench.test\r\n\r\n".encode())
        await w.drain()
        head = await r.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await r.readexactly(length)
        held.append((r, w))

async def main():
    host, port = sys.argv[1].rsplit(":", 1)
    n = int(sys.argv[2])
    path = sys.argv[3] if len(sys.argv) > 3 else "/.well-known/acme-challenge/bench-token-0123456789abcdefghijKLMNOP"
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 1024), hard))
    held, sem = [], asyncio.Semaphore(256)
    await asyncio.gather(*(one(host, int(port), path, sem, held) for _ in range(n)))
    print(f"ready {len(held)}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
