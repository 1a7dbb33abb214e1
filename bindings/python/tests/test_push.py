"""A 64 MiB blob pushed through the writer: what the push adds to this
process's memory stays well under the blob's size (the figure is printed)."""

import hashlib
import unittest

import ocirelay
from registry import Registry, rss_mib

MIB = 1024 * 1024


class PushTest(unittest.TestCase):
    def test_a_64_mib_blob_pushed_through_the_writer_keeps_memory_bounded(self):
        registry = Registry()
        self.addCleanup(registry.stop)
        size, chunk = 64 * MIB, MIB
        # Deterministic content, made a chunk at a time.
        piece = lambda i: bytes([i % 251]) * chunk  # noqa: E731
        digest = hashlib.sha256()
        for i in range(size // chunk):
            digest.update(piece(i))
        ref = f"{registry.host}/big@sha256:{digest.hexdigest()}"

        client = ocirelay.Client()
        writer = client.push_blob(ref, size)
        before = peak = rss_mib()
        for i in range(size // chunk):
            self.assertTrue(writer.write(piece(i)))
            peak = max(peak, rss_mib())
        pushed = writer.finish()
        self.assertEqual((pushed.digest, pushed.size), (f"sha256:{digest.hexdigest()}", size))
        print(f"\n64 MiB push through the writer: peak RSS {peak:.1f} MiB ({before:.1f} MiB before it)")
        self.assertLess(peak - before, 48, f"peak {peak:.1f} MiB, {before:.1f} MiB before")

        # Pushed again: the registry has it, nothing more is sent.
        self.assertFalse(client.push_blob(ref, size).write(piece(0)))


if __name__ == "__main__":
    unittest.main()
