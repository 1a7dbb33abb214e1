"""What an embedder meets besides the registry calls: bytes moved in one
piece (not a byte at a time), the compiled component cached across
processes, a client that closes, descriptors as dataclasses, and a build
that refuses to package without the component."""

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

from wasmtime import component as wc

import ocirelay
from ocirelay import _bytes
from registry import Registry, sha256

MIB = 1024 * 1024


class BytesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = Registry()

    @classmethod
    def tearDownClass(cls):
        cls.registry.stop()

    def test_the_fast_path_is_installed(self):
        # It is installed on import, once its round trip agrees with
        # wasmtime's own conversion: false here means a wasmtime whose
        # layout it does not know, and pushes at 1 MiB/s again.
        self.assertTrue(_bytes.install())

    def test_content_of_every_size_crosses_unchanged_both_ways(self):
        client = ocirelay.Client()
        for size in (0, 1, 255, 64 * 1024 + 3, 3 * MIB + 1):
            content = bytes((i * 7 + size) % 256 for i in range(min(size, 4096))) * (size // 4096 + 1)
            content = content[:size]
            ref = f"{self.registry.host}/bytes@{sha256(content)}"
            writer = client.push_blob(ref, size)
            writer.write(content)
            self.assertEqual(writer.finish().digest, sha256(content))
            found = client.lookup(ref, type="blob")
            self.assertEqual(found.bytes(), content, f"{size} bytes")

    def test_push_and_read_speed(self):
        # Figures, printed; bounds far below them so that only a return to
        # the per-byte path (1 MiB/s) fails.
        content = os.urandom(32 * MIB)
        ref = f"{self.registry.host}/speed@{sha256(content)}"
        client = ocirelay.Client()
        started = time.perf_counter()
        writer = client.push_blob(ref, len(content))
        view = memoryview(content)
        for at in range(0, len(content), MIB):
            writer.write(bytes(view[at:at + MIB]))
        writer.finish()
        push = len(content) / MIB / (time.perf_counter() - started)
        started = time.perf_counter()
        digest = hashlib.sha256()
        for chunk in client.lookup(ref, type="blob").chunks():
            digest.update(chunk)
        read = len(content) / MIB / (time.perf_counter() - started)
        self.assertEqual(f"sha256:{digest.hexdigest()}", sha256(content))
        print(f"\n32 MiB from Python: push {push:.0f} MiB/s, read {read:.0f} MiB/s")
        self.assertGreater(push, 8)
        self.assertGreater(read, 8)


class ClientTest(unittest.TestCase):
    def test_a_client_closes_and_is_a_context_manager(self):
        registry = Registry()
        self.addCleanup(registry.stop)
        with ocirelay.Client() as client:
            self.assertIsNone(client.list_tags(f"{registry.host}/nothing"))
        with self.assertRaises(ValueError):
            client.list_tags(f"{registry.host}/nothing")
        client.close()  # twice: nothing

    def test_a_platform_is_a_dataclass_with_the_package_s_field_names(self):
        platform = wc.Record()
        for name, value in (("architecture", "arm64"), ("os", "linux"), ("os-version", None),
                            ("os-features", ["sse4"]), ("variant", "v8")):
            setattr(platform, name, value)
        record = wc.Record()
        for name, value in (("media-type", "application/vnd.oci.image.manifest.v1+json"),
                            ("digest", sha256(b"x")), ("size", 1), ("urls", []), ("annotations", []),
                            ("platform", platform), ("artifact-type", None)):
            setattr(record, name, value)
        descriptor = ocirelay._descriptor(record)
        self.assertEqual(descriptor.platform, ocirelay.Platform("arm64", "linux", None, ["sse4"], "v8"))
        self.assertEqual(descriptor.platform.os_features, ["sse4"])


class CompiledCacheTest(unittest.TestCase):
    def test_a_second_process_loads_the_compiled_component(self):
        cache = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, cache)
        env = dict(os.environ, OCIRELAY_CACHE_DIR=cache)
        timed = ("import time, ocirelay; t = time.perf_counter(); ocirelay.Client(); "
                 "print(time.perf_counter() - t)")
        run = lambda: float(subprocess.run([sys.executable, "-c", timed], env=env, check=True,
                                           capture_output=True, text=True).stdout)
        cold = run()
        cached = list(Path(cache).glob("python-*.cwasm"))
        self.assertEqual(len(cached), 1, os.listdir(cache))
        warm = run()
        print(f"\nClient(): {cold * 1000:.0f} ms compiling, {warm * 1000:.0f} ms from the cache")
        self.assertLess(warm, cold)
        # A damaged file is refused by wasmtime, recompiled and replaced.
        cached[0].write_bytes(b"not a compiled component")
        run()
        self.assertNotEqual(cached[0].read_bytes(), b"not a compiled component")


class PackagingTest(unittest.TestCase):
    def test_a_build_without_the_component_is_refused(self):
        source = Path(__file__).resolve().parent.parent
        if not (source / "setup.py").is_file():
            self.skipTest("run from an installed copy: no sources beside the tests")
        work = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, work)
        for name in ("pyproject.toml", "setup.py", "README.md"):
            shutil.copy(source / name, work / name)
        shutil.copytree(source / "src", work / "src",
                        ignore=shutil.ignore_patterns("ocirelay.wasm", "*.egg-info", "__pycache__"))
        built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                                "-w", str(work / "dist"), str(work)], capture_output=True, text=True)
        self.assertNotEqual(built.returncode, 0)
        self.assertIn("ocirelay.wasm is missing", built.stdout + built.stderr)


if __name__ == "__main__":
    unittest.main()
