"""Registries for the tests: CNCF distribution (`/usr/bin/docker-registry`)
on free loopback ports with temporary storage, plain HTTP (127.0.0.1)."""

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

CONFIG = os.path.join(os.path.dirname(__file__), "..", "..", "..", "scripts", "registry.yml")


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Registry:
    """A registry on a free port until `stop`."""

    def __init__(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.host = f"127.0.0.1:{port}"
        self.storage = tempfile.mkdtemp(prefix="ocirelay-py-")
        env = dict(os.environ, REGISTRY_HTTP_ADDR=self.host,
                   REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=self.storage)
        self.process = subprocess.Popen(["/usr/bin/docker-registry", "serve", CONFIG], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the registry on {self.host} did not start")

    def stop(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.storage, ignore_errors=True)
