"""Pushes a 64 MiB blob through the writer to the registry named on the
command line and prints, as JSON, what was pushed and this process's peak
RSS: an embedder that does only that (run by test_push.py)."""

import hashlib
import json
import sys

import ocirelay

MIB = 1024 * 1024
host, repository = sys.argv[1:3]
size, chunk = 64 * MIB, MIB


def piece(i: int) -> bytes:
    """Deterministic content, a chunk at a time."""
    return bytes([i % 251]) * chunk


digest = hashlib.sha256()
for i in range(size // chunk):
    digest.update(piece(i))
ref = f"{host}/{repository}@sha256:{digest.hexdigest()}"

client = ocirelay.Client()
writer = client.push_blob(ref, size)
wanted = sum(writer.write(piece(i)) for i in range(size // chunk))
pushed = writer.finish()
again = client.push_blob(ref, size).write(piece(0))
# The kernel's high-water mark of this process's memory since exec (not
# ru_maxrss, which carries over the parent's peak when it forked us).
with open("/proc/self/status") as status:
    peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
print(json.dumps({"digest": f"sha256:{digest.hexdigest()}", "pushed": [pushed.digest, pushed.size],
                  "wanted": wanted, "again": again, "peak_mib": peak}))
