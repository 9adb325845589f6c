"""Measures what a local durable spool would cost: appends of fixed-size
records to one file, one fdatasync per group, on the disk of the current
directory. Prints records/s and fdatasync p50/p99. See ingress/SPOOL.md."""
import os
import statistics
import time

path = "spool-bench.log"
def run(record_bytes, group, total):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
    rec = b"x" * record_bytes
    lat = []
    t0 = time.perf_counter()
    n = 0
    while n < total:
        s = time.perf_counter()
        os.write(fd, rec * group)
        os.fdatasync(fd)
        lat.append(time.perf_counter() - s)
        n += group
    el = time.perf_counter() - t0
    os.close(fd)
    lat.sort()
    return n / el, statistics.median(lat) * 1000, lat[int(len(lat) * 0.99) - 1] * 1000
for rb, g, total in [(4096, 1, 2000), (4096, 16, 16000), (4096, 64, 64000), (65536, 1, 500)]:
    rate, p50, p99 = run(rb, g, total)
    print(f"record {rb} B, {g} per fdatasync: {rate:,.0f} records/s, fdatasync p50 {p50:.2f} ms p99 {p99:.2f} ms")
os.remove(path)
