"""A local webhook receiver for the README's tour: prints every request it gets and answers 200.

    python3 examples/receiver.py [PORT]      # default 9000, listens on 127.0.0.1 only

Standard library only, so it runs before `make run` has installed anything.
"""

from __future__ import annotations

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Receiver(BaseHTTPRequestHandler):
    def _print_and_answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        print(f"\n{self.command} {self.path}")
        for name, value in self.headers.items():
            print(f"  {name}: {value}")
        try:
            print(json.dumps(json.loads(body), indent=2, ensure_ascii=False))
        except ValueError:
            print(body.decode("utf-8", "replace"))
        sys.stdout.flush()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _print_and_answer

    def log_message(self, format: str, *args: object) -> None:  # the request is printed above instead
        return


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9000
    print(f"listening on http://127.0.0.1:{port}/ (Ctrl-C to stop)")
    ThreadingHTTPServer(("127.0.0.1", port), Receiver).serve_forever()
