#!/usr/bin/env python3
"""A Kafka-aware TCP proxy that loses produce responses, to prove idempotent producers are
deduplicated by the broker rather than lucky.

For every client id it counts Produce requests; every second one (up to MAX_FAULTS per client
id) is forwarded to the broker, the broker's answer is awaited and thrown away, and both
connections are cut. The records were written, the client never heard so, and it must send the
same batch again on a new connection with the same producer id, epoch and sequence numbers: a
broker that ignores sequence numbers then stores it twice.

Run a broker whose advertised listener is this proxy, so every connection a client opens after
bootstrapping also comes through here. Each fault is one line in LOG:
"fault <client id> <correlation id>", which a test reads to check it was really exercised.

Usage: faultproxy.py LISTEN_PORT UPSTREAM_HOST:PORT LOG
"""
import asyncio
import collections
import struct
import sys

MAX_FAULTS = 4
PRODUCE = 0

listen_port = int(sys.argv[1])
up_host, up_port = sys.argv[2].rsplit(":", 1)
log = open(sys.argv[3], "a", buffering=1)
produce_requests = collections.Counter()
faults = collections.Counter()


async def read_frame(reader):
    """One size-prefixed Kafka frame, or None at the end of the stream."""
    try:
        head = await reader.readexactly(4)
        (size,) = struct.unpack(">i", head)
        return head + await reader.readexactly(size)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def request_header(frame):
    """(api key, correlation id, client id) of a request frame (header v1 and v2 alike)."""
    api_key, _version, correlation = struct.unpack(">hhi", frame[4:12])
    (id_len,) = struct.unpack(">h", frame[12:14])
    client_id = frame[14:14 + id_len].decode(errors="replace") if id_len >= 0 else ""
    return api_key, correlation, client_id


async def serve(client_r, client_w):
    try:
        up_r, up_w = await asyncio.open_connection(up_host, int(up_port))
    except OSError:
        client_w.close()
        return
    lost = {}  # correlation id -> client id, for responses the client must not see
    cut = asyncio.Event()

    async def requests():
        while not cut.is_set():
            frame = await read_frame(client_r)
            if frame is None:
                break
            if len(frame) >= 14:
                api_key, correlation, client_id = request_header(frame)
                if api_key == PRODUCE:
                    produce_requests[client_id] += 1
                    if produce_requests[client_id] % 2 == 0 and faults[client_id] < MAX_FAULTS:
                        faults[client_id] += 1
                        lost[correlation] = client_id
            try:
                up_w.write(frame)
                await up_w.drain()
            except (ConnectionError, OSError):
                break
        cut.set()

    async def responses():
        while not cut.is_set():
            frame = await read_frame(up_r)
            if frame is None:
                break
            (correlation,) = struct.unpack(">i", frame[4:8])
            if correlation in lost:
                log.write(f"fault {lost[correlation]} {correlation}\n")
                break  # the broker wrote the batch; the client never learns it
            try:
                client_w.write(frame)
                await client_w.drain()
            except (ConnectionError, OSError):
                break
        cut.set()

    tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(responses())]
    await cut.wait()
    for t in tasks:
        t.cancel()
    for w in (client_w, up_w):
        try:
            w.transport.abort()
        except Exception:  # noqa: BLE001 - already gone
            pass


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", listen_port)
    async with server:
        await server.serve_forever()


asyncio.run(main())
