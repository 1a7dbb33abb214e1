"""What an embedder meets besides the registry calls: content that crosses
into and out of the component as base64 text (one copy, not a conversion
per byte), the compiled component cached across processes, a client that
closes, descriptors as dataclasses, and a build that refuses to package
without the component. Speeds are measured by bench.py, not here."""

import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

from wasmtime import component as wc

import ocirelay
from registry import Registry, sha256

MIB = 1024 * 1024


class BytesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.registry = Registry()

    @classmethod
    def tearDownClass(cls):
        cls.registry.stop()

    def test_content_of_every_size_crosses_unchanged_both_ways(self):
        # Sizes around base64's groups of three, a write split in pieces,
        # and a read in several calls.
        client = ocirelay.Client()
        for size in (0, 1, 2, 3, 4, 255, 64 * 1024 + 1, 2 * MIB + 2):
            content = bytes((i * 7 + size) % 251 for i in range(size))
            ref = f"{self.registry.host}/bytes@{sha256(content)}"
            self.assertEqual(client.ensure_blob(ref, content).digest, sha256(content))
            found = client.lookup(ref, type="blob")
            self.assertEqual(found.bytes(), content, f"{size} bytes")
            self.assertEqual(b"".join(client.lookup(ref, type="blob").chunks(1000)), content)

    def test_text_that_is_not_base64_is_refused_and_nothing_is_written(self):
        content = b"checked content"
        ref = f"{self.registry.host}/bytes@{sha256(content)}"
        client = ocirelay.Client()
        writer = client.push_blob(ref, len(content))
        with self.assertRaises(ocirelay.InvalidInputError) as caught:
            writer._instance.call("[method]blob-writer.write-base64", writer._writer, "not base64!")
        self.assertIn("base64", str(caught.exception))
        self.assertTrue(writer.write(content))
        self.assertEqual(writer.finish().digest, sha256(content))


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
        run = lambda: subprocess.run([sys.executable, "-c", "import ocirelay; ocirelay.Client()"],
                                     env=env, check=True)
        run()
        cached = list(Path(cache).glob("python-*.cwasm"))
        self.assertEqual(len(cached), 1, os.listdir(cache))
        written = cached[0].stat()
        run()
        again = cached[0].stat()
        # Loaded, not compiled and replaced (a replacement is a new file).
        self.assertEqual((again.st_ino, again.st_mtime_ns), (written.st_ino, written.st_mtime_ns))
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
