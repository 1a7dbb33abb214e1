"""Figures for the Python package, against a registry it starts on
loopback (tests/registry.py): push and read MiB/s of a 64 MiB blob, peak
RSS, and the first `Client()` of a process, compiling and from the cache.
A benchmark, not a test: it prints what it measured.

    python bench.py [RUNS]
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tests"))

import ocirelay  # noqa: E402
from registry import Registry, sha256  # noqa: E402

MIB = 1024 * 1024


def median(values):
    values = sorted(values)
    return values[len(values) // 2]


def push_and_read(host: str, content: bytes, run: int):
    ref = f"{host}/bench{run}@{sha256(content)}"
    client = ocirelay.Client()
    started = time.perf_counter()
    writer = client.push_blob(ref, len(content))
    view = memoryview(content)
    for at in range(0, len(content), MIB):
        writer.write(view[at:at + MIB])
    writer.finish()
    push = len(content) / MIB / (time.perf_counter() - started)
    started = time.perf_counter()
    digest = hashlib.sha256()
    for chunk in client.lookup(ref, type="blob").chunks():
        digest.update(chunk)
    read = len(content) / MIB / (time.perf_counter() - started)
    assert f"sha256:{digest.hexdigest()}" == sha256(content)
    return push, read


def first_client(cache: str) -> float:
    code = "import time, ocirelay; t = time.perf_counter(); ocirelay.Client(); print(time.perf_counter() - t)"
    env = dict(os.environ, OCIRELAY_CACHE_DIR=cache)
    return float(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                capture_output=True, text=True).stdout)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    registry = Registry()
    try:
        content = os.urandom(64 * MIB)
        figures = [push_and_read(registry.host, content, run) for run in range(runs)]
    finally:
        registry.stop()
    with open("/proc/self/status") as status:
        peak = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    with tempfile.TemporaryDirectory() as cache:
        cold = first_client(cache)
        warm = median([first_client(cache) for _ in range(runs)])
    print(f"64 MiB blob, median of {runs}: push {median([p for p, _ in figures]):.0f} MiB/s, "
          f"read {median([r for _, r in figures]):.0f} MiB/s; peak RSS {peak:.0f} MiB "
          "(the 64 MiB content held by the benchmark included)")
    print(f"first Client() of a process: {cold * 1000:.0f} ms compiling, {warm * 1000:.0f} ms from the cache")


if __name__ == "__main__":
    main()
