"""A registry that keeps answering 429: the error the package raises."""

import socket
import subprocess
import sys
import time
import unittest

import ocirelay

# A registry stand-in that answers every request 429 with a Retry-After;
# in a process of its own (the package's calls hold this thread).
SERVER = """
import http.server, sys
class Busy(http.server.BaseHTTPRequestHandler):
    def answer(self):
        body = b'{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}'
        self.send_response(429)
        self.send_header("Retry-After", "9")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
    do_GET = do_HEAD = answer
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Busy).serve_forever()
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RateLimitedTest(unittest.TestCase):
    def test_a_429_past_the_deadline_is_rate_limited_with_its_retry_after(self):
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
        self.addCleanup(server.wait)
        self.addCleanup(server.kill)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                self.assertLess(time.monotonic(), deadline, "the stand-in never listened")
                time.sleep(0.05)
        client = ocirelay.Client(retry_deadline_secs=1)
        with self.assertRaises(ocirelay.RateLimitedError) as caught:
            client.lookup(f"127.0.0.1:{port}/app:v1", head=True)
        self.assertEqual(caught.exception.retry_after_secs, 9)
        self.assertEqual(caught.exception.kind, "rate-limited")
        self.assertIn("429", str(caught.exception))


if __name__ == "__main__":
    unittest.main()
