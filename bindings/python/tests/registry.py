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
        self.storage = tempfile.mkdtemp(prefix="ocirelay-py-")
        # Every answer names the registry (the header), so that a test speaks
        # to its own and not to another process's server on its port.
        ident = os.path.basename(self.storage)
        # A port free when chosen may be taken before the registry binds it:
        # the registry then exits and is started again on another port.
        for _ in range(3):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            self.host = f"127.0.0.1:{port}"
            env = dict(os.environ, REGISTRY_HTTP_ADDR=self.host,
                       REGISTRY_HTTP_HEADERS="{X-Ocirelay-Test-Registry: [%s]}" % ident,
                       REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY=self.storage)
            self.process = subprocess.Popen(["/usr/bin/docker-registry", "serve", CONFIG],
                                            env=env, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.DEVNULL)
            for _ in range(100):
                if self.process.poll() is not None:
                    break
                try:
                    with urllib.request.urlopen(f"http://{self.host}/v2/", timeout=1) as answer:
                        if answer.headers.get("X-Ocirelay-Test-Registry") == ident:
                            return
                except OSError:
                    pass
                time.sleep(0.05)
            if self.process.poll() is None:
                break
        self.stop()
        raise RuntimeError(f"the registry on {self.host} did not start")

    def stop(self):
        self.process.kill()
        self.process.wait()
        shutil.rmtree(self.storage, ignore_errors=True)
