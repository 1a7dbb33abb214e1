"""A 64 MiB blob pushed through the writer by a process that does only
that (push_child.py): it arrives whole, and that process's peak RSS stays
under 100 MiB (the figure is printed)."""

import json
import os
import subprocess
import sys
import unittest

from registry import Registry

MIB = 1024 * 1024


class PushTest(unittest.TestCase):
    def test_a_64_mib_blob_pushed_through_the_writer_by_an_embedder(self):
        registry = Registry()
        self.addCleanup(registry.stop)
        child = os.path.join(os.path.dirname(__file__), "push_child.py")
        out = json.loads(subprocess.run([sys.executable, child, registry.host, "big"], check=True,
                                        capture_output=True, text=True).stdout)
        self.assertEqual(out["pushed"], [out["digest"], 64 * MIB])
        self.assertEqual(out["wanted"], 64, "every chunk was wanted")
        self.assertFalse(out["again"], "pushed again: the registry has it, nothing is sent")
        print(f"\n64 MiB push through the writer: peak RSS {out['peak_mib']:.1f} MiB")
        self.assertLess(out["peak_mib"], 100)


if __name__ == "__main__":
    unittest.main()
