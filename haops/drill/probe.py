"""The drill's probe: an open-model stream of requests, one record per request, on CLOCK_MONOTONIC.

Open model: request i starts at t0 + i / rate whatever the earlier ones are doing, so a stalled
server meets the same arrival rate as a healthy one (a closed loop would slow down with it and
hide the gap). Each request is a new TCP connection: a plain connect, or one HTTP/1.1 GET with
`Connection: close`. Bounded: at most rate x duration requests, each with its own timeout, and
the whole run stops by itself (or earlier, on SIGTERM, still printing every request it sent).

Runs standalone (`python -I probe.py ...`, stdlib only) so the drill can start it inside a lab
host's network namespace with nsenter. On stdout: {"ready": t0} as it starts, then one JSON line per request:
{"t": absolute monotonic start, "outcome", "latency", "backend", "status"}, then {"done": true}.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import resource
import signal
import sys
import time

MAX_RATE = 5000
MAX_DURATION_S = 600
HEAD_LIMIT = 16384


def classify_os_error(error: OSError) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        return "reset"
    if error.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH):
        return "unreachable"
    if error.errno == errno.ETIMEDOUT:
        return "timeout"
    return "reset"


def parse_head(head: bytes) -> tuple[int, str]:
    """(status, X-Backend value) from an HTTP response head; status 0 when it is not HTTP."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        return 0, ""
    backend = ""
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "x-backend":
            backend = value.strip()
    return int(parts[1]), backend


async def http_exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, path: str) -> tuple[str, int, str]:
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: haops-drill\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status, backend = parse_head(head)
    while await reader.read(65536):
        pass
    outcome = "ok" if 200 <= status < 400 else "http_error"
    return outcome, status, backend


async def one_request(address: str, port: int, http_path: str | None, timeout: float) -> dict[str, object]:
    start = time.monotonic()
    outcome, status, backend = "ok", 0, ""
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(address, port, limit=HEAD_LIMIT)
            if http_path is not None:
                outcome, status, backend = await http_exchange(reader, writer, address, http_path)
    except TimeoutError:
        outcome = "timeout"
    except asyncio.IncompleteReadError:
        outcome = "reset"
    except asyncio.LimitOverrunError:
        outcome = "http_error"
    except OSError as error:
        outcome = classify_os_error(error)
    finally:
        if writer is not None:
            writer.transport.abort()
    return {"t": start, "outcome": outcome, "latency": time.monotonic() - start, "backend": backend, "status": status}


async def run(address: str, port: int, http_path: str | None, rate: float, duration: float, timeout: float) -> None:
    """SIGTERM ends the stream early: no new requests, the ones in flight finish and are printed."""
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    count = int(rate * duration)
    t0 = time.monotonic() + 0.05
    sys.stdout.write(json.dumps({"ready": t0}) + "\n")
    sys.stdout.flush()
    tasks = []
    for i in range(count):
        delay = t0 + i / rate - time.monotonic()
        if delay > 0:
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except TimeoutError:
                pass
        if stopping.is_set():
            break
        tasks.append(asyncio.create_task(one_request(address, port, http_path, timeout)))
    for record in await asyncio.gather(*tasks):
        sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.write(json.dumps({"done": True, "t0": t0}) + "\n")
    sys.stdout.flush()


def raise_open_file_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("address")
    parser.add_argument("port", type=int)
    parser.add_argument("--http", metavar="PATH", help="send an HTTP GET for PATH (default: plain TCP connects)")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    if not 0 < args.rate <= MAX_RATE or not 0 < args.duration <= MAX_DURATION_S or not 0 < args.timeout <= 30:
        parser.error(f"rate must be in (0, {MAX_RATE}], duration in (0, {MAX_DURATION_S}] s, timeout in (0, 30] s")
    raise_open_file_limit()
    asyncio.run(run(args.address, args.port, args.http, args.rate, args.duration, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
