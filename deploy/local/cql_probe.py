#!/usr/bin/env python3
"""Minimal CQL readiness probe (native protocol v4, Python stdlib only).

Connects to a Cassandra/ScyllaDB node, sends STARTUP, then runs one query
(default: SELECT release_version FROM system.local) at consistency ONE.

Exit status:
  0  the query returned a ROWS result with at least one row
  1  the node answered, but not with rows (error, auth required, no rows...)
  2  no usable connection (refused, timeout, connection closed, bad frame)

Usage:
  cql_probe.py [--host 127.0.0.1] [--port 9042] [--timeout 3] [--query CQL] [-q]

On success the first column of the first row is printed when it is text
(for the default query: the server's release version), unless -q is given.
"""

import argparse
import socket
import struct
import sys

PROTOCOL_VERSION = 0x04  # request frames; responses carry 0x84
OP_ERROR, OP_STARTUP, OP_READY, OP_AUTHENTICATE = 0x00, 0x01, 0x02, 0x03
OP_QUERY, OP_RESULT = 0x07, 0x08
RESULT_ROWS = 0x0002
CONSISTENCY_ONE = 0x0001
TEXT_TYPES = (0x0001, 0x000A, 0x000D)  # ascii, text, varchar


class ProbeError(Exception):
    """The node answered, but not the way a ready node answers."""


def frame(stream: int, opcode: int, body: bytes) -> bytes:
    return struct.pack(">BBhBi", PROTOCOL_VERSION, 0, stream, opcode, len(body)) + body


def cql_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">H", len(b)) + b


def cql_long_string(s: str) -> bytes:
    b = s.encode()
    return struct.pack(">i", len(b)) + b


def recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed by server")
        buf += chunk
    return bytes(buf)


def read_frame(sock: socket.socket, want_stream: int):
    """Return (opcode, body) of the next response frame for `want_stream`."""
    while True:
        version, _flags, stream, opcode, length = struct.unpack(">BBhBi", recv_exact(sock, 9))
        if version & 0x7F != PROTOCOL_VERSION:
            raise ConnectionError(f"unexpected protocol version 0x{version:02x}")
        body = recv_exact(sock, length)
        if stream == want_stream:
            return opcode, body
        # stream -1 = server-pushed EVENT; anything else is not ours: skip it


class Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ProbeError("truncated response body")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def int(self) -> int:
        return struct.unpack(">i", self.take(4))[0]

    def short(self) -> int:
        return struct.unpack(">H", self.take(2))[0]

    def string(self) -> str:
        return self.take(self.short()).decode(errors="replace")

    def bytes(self):
        n = self.int()
        return None if n < 0 else self.take(n)

    def type_option(self) -> int:
        """Read a column type, skipping nested type parameters; return its id."""
        tid = self.short()
        if tid == 0x0000:  # custom: class name
            self.string()
        elif tid in (0x0020, 0x0022):  # list, set
            self.type_option()
        elif tid == 0x0021:  # map
            self.type_option()
            self.type_option()
        elif tid == 0x0030:  # UDT: keyspace, name, n fields of (name, type)
            self.string()
            self.string()
            for _ in range(self.short()):
                self.string()
                self.type_option()
        elif tid == 0x0031:  # tuple
            for _ in range(self.short()):
                self.type_option()
        return tid


def error_message(body: bytes) -> str:
    r = Reader(body)
    code = r.int()
    return f"server error 0x{code:04x}: {r.string()}"


def probe(host: str, port: int, timeout: float, query: str):
    """Run the probe; return the first text value of the first row (or '')."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        startup = struct.pack(">H", 1) + cql_string("CQL_VERSION") + cql_string("3.0.0")
        sock.sendall(frame(1, OP_STARTUP, startup))
        opcode, body = read_frame(sock, 1)
        if opcode == OP_AUTHENTICATE:
            raise ProbeError("server requires authentication (probe only supports AllowAllAuthenticator)")
        if opcode == OP_ERROR:
            raise ProbeError(error_message(body))
        if opcode != OP_READY:
            raise ProbeError(f"unexpected opcode 0x{opcode:02x} after STARTUP")

        params = struct.pack(">HB", CONSISTENCY_ONE, 0)  # consistency, no flags
        sock.sendall(frame(2, OP_QUERY, cql_long_string(query) + params))
        opcode, body = read_frame(sock, 2)
        if opcode == OP_ERROR:
            raise ProbeError(error_message(body))
        if opcode != OP_RESULT:
            raise ProbeError(f"unexpected opcode 0x{opcode:02x} after QUERY")

        r = Reader(body)
        kind = r.int()
        if kind != RESULT_ROWS:
            raise ProbeError(f"result kind 0x{kind:04x} is not ROWS")
        flags, ncols = r.int(), r.int()
        if flags & 0x0002:  # has_more_pages: paging state
            r.bytes()
        if flags & 0x0004:  # no_metadata
            raise ProbeError("unexpected no_metadata flag")
        global_spec = bool(flags & 0x0001)
        if global_spec:
            r.string()
            r.string()
        types = []
        for _ in range(ncols):
            if not global_spec:
                r.string()
                r.string()
            r.string()  # column name
            types.append(r.type_option())
        nrows = r.int()
        if nrows < 1:
            raise ProbeError("query returned no rows")
        first = r.bytes() if ncols else None
        if types and types[0] in TEXT_TYPES and first is not None:
            return first.decode(errors="replace")
        return ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9042)
    ap.add_argument("--timeout", type=float, default=3.0, help="socket timeout in seconds")
    ap.add_argument("--query", default="SELECT release_version FROM system.local")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args()
    try:
        value = probe(args.host, args.port, args.timeout, args.query)
    except ProbeError as e:
        if not args.quiet:
            print(f"cql_probe: {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    except (OSError, ConnectionError, struct.error) as e:
        if not args.quiet:
            print(f"cql_probe: {args.host}:{args.port}: {e}", file=sys.stderr)
        return 2
    if not args.quiet and value:
        print(value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
