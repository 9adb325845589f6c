#!/usr/bin/env python3
"""Minimal Kafka readiness probe (Python stdlib only).

Sends one Metadata request (API key 3, version 1, all topics) to a broker and
checks the answer: the broker list must not be empty, and every topic and
partition must be error-free with an elected leader. This is what a client
needs after a (re)start, and costs milliseconds instead of a CLI JVM start.

Exit status:
  0  ready
  1  the broker answered, but is not ready yet (no brokers, leaderless partitions)
  2  no usable connection (refused, timeout, connection closed, bad frame)

Usage:
  kafka_probe.py [--host 127.0.0.1] [--port 9092] [--timeout 3] [-v]

With -v the brokers and topics (name, partitions) are printed.
"""

import argparse
import socket
import struct
import sys

API_METADATA, VERSION = 3, 1
CORRELATION_ID = 0x1F1F
CLIENT_ID = b"inboxflow-kafka-probe"


class NotReady(Exception):
    """The broker answered, but is not ready for clients yet."""


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by broker")
        buf += chunk
    return bytes(buf)


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def unpack(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise ConnectionError("truncated Metadata response")
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return value[0] if len(value) == 1 else value

    def string(self):
        n = self.unpack(">h")
        if n < 0:
            return None
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        return raw.decode(errors="replace")

    def int32_array(self):
        return [self.unpack(">i") for _ in range(max(self.unpack(">i"), 0))]


def metadata(host: str, port: int, timeout: float):
    """Return (brokers, topics) from a Metadata v1 request for all topics."""
    header = struct.pack(">hhih", API_METADATA, VERSION, CORRELATION_ID, len(CLIENT_ID)) + CLIENT_ID
    body = struct.pack(">i", -1)  # topics: null = all topics
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        r = Reader(recv_exact(sock, size))
    if r.unpack(">i") != CORRELATION_ID:
        raise ConnectionError("unexpected correlation id")
    brokers = []
    for _ in range(r.unpack(">i")):
        node_id, host_, port_, _rack = r.unpack(">i"), r.string(), r.unpack(">i"), r.string()
        brokers.append((node_id, host_, port_))
    r.unpack(">i")  # controller id
    topics = []
    for _ in range(r.unpack(">i")):
        error, name, _internal = r.unpack(">h"), r.string(), r.unpack(">?")
        partitions = []
        for _ in range(r.unpack(">i")):
            p_error, index, leader = r.unpack(">h"), r.unpack(">i"), r.unpack(">i")
            r.int32_array()  # replicas
            r.int32_array()  # in-sync replicas
            partitions.append((index, p_error, leader))
        topics.append((name, error, partitions))
    return brokers, topics


def check(brokers, topics):
    if not brokers:
        raise NotReady("no live brokers in metadata")
    for name, error, partitions in topics:
        if error:
            raise NotReady(f"topic {name}: error code {error}")
        for index, p_error, leader in partitions:
            if p_error or leader < 0:
                raise NotReady(f"partition {name}-{index}: error code {p_error}, leader {leader}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9092)
    ap.add_argument("--timeout", type=float, default=3.0, help="socket timeout in seconds")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    try:
        brokers, topics = metadata(args.host, args.port, args.timeout)
        check(brokers, topics)
    except NotReady as e:
        if args.verbose:
            print(f"kafka_probe: {args.host}:{args.port}: not ready: {e}", file=sys.stderr)
        return 1
    except (OSError, struct.error) as e:
        if args.verbose:
            print(f"kafka_probe: {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    if args.verbose:
        for node_id, host, port in brokers:
            print(f"broker {node_id} {host}:{port}")
        for name, _error, partitions in sorted(topics):
            print(f"topic {name} partitions={len(partitions)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
