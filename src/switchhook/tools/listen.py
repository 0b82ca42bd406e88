"""`switchhook listen`: a local webhook receiver for development. It prints every request it gets (method, path,
headers, the body as pretty JSON or as text), checks its Standard Webhooks signature when given the hook's secret,
and answers 200 or the status asked for (to try retries). It replaces a public request bin: telephony servers often
have no route to the internet, and a newcomer's first event should not leave the machine (issue 15)."""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final, TextIO

from switchhook.core.signing import secret_key, verify

#: Standard Webhooks' tolerance between the sender's `webhook-timestamp` and now (s), as its reference libraries.
TOLERANCE_S: Final = 5 * 60
#: Largest body read (bytes); a larger request is answered 413 and not printed whole.
MAX_BODY_BYTES: Final = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Verdict:
    valid: bool
    reason: str

    def __str__(self) -> str:
        return "valid" if self.valid else f"INVALID ({self.reason})"


def check_signature(
    key: bytes, headers: dict[str, str], body: bytes, now_s: float, tolerance_s: float = TOLERANCE_S
) -> Verdict:
    """Whether `body` carries a valid Standard Webhooks signature made with `key` (headers by lower-case name)."""
    message_id, timestamp, signature = (
        headers.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature")
    )
    if not (message_id and timestamp and signature):
        return Verdict(False, "no webhook-id, webhook-timestamp and webhook-signature headers")
    if not timestamp.isascii() or not timestamp.isdigit():
        return Verdict(False, f"webhook-timestamp is not a number of seconds: {timestamp[:40]!r}")
    if abs(now_s - int(timestamp)) > tolerance_s:
        return Verdict(False, f"webhook-timestamp is more than {tolerance_s:.0f} s away from this clock")
    if not verify(key, message_id, int(timestamp), body, signature):
        return Verdict(False, "the signature does not match the body with this secret")
    return Verdict(True, "")


#: Control characters (C0 but tab and newline, DEL, C1) shown escaped: whoever can reach the port must not drive
#: the developer's terminal (escape sequences can retitle it, move the cursor over earlier lines, hide text).
CONTROL: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """`text` with its control characters shown as \\xNN."""
    return CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def render(method: str, path: str, client: str, headers: list[tuple[str, str]], body: bytes) -> str:
    """What is printed of one request: a header line, the headers, then the body (pretty JSON, else text), every
    part with its control characters escaped."""
    lines = [f"--- {time.strftime('%H:%M:%S')} {method} {path} from {client}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body:
        try:
            lines.append(json.dumps(json.loads(body), indent=2, ensure_ascii=False))
        except (ValueError, RecursionError):
            lines.append(body.decode("utf-8", "replace"))
    return printable("\n".join(lines))


def make_handler(key: bytes | None, status: int, out: TextIO, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as switchhook's sender expects of a receiver

        def _receive(self) -> None:
            declared = self.headers.get("Content-Length") or "0"
            length = int(declared) if declared.isdigit() else 0
            answer = status
            if length > MAX_BODY_BYTES:
                body, answer = b"", 413
                self.close_connection = True
            else:
                body = self.rfile.read(length) if length else b""
            text = render(self.command, self.path, self.client_address[0], list(self.headers.items()), body)
            if key is not None and answer != 413:
                lowered = {name.lower(): value for name, value in self.headers.items()}
                text += f"\nsignature: {check_signature(key, lowered, body, time.time())}"
            with lock:  # requests served by several threads print whole, one after another
                out.write(f"{text}\n-> {answer}\n\n")
                out.flush()
            self.send_response(answer)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _receive

        def log_message(self, format: str, *args: object) -> None:
            return  # the request is printed whole above

    return Handler


def listen(
    host: str,
    port: int,
    secret: str | None,
    status: int,
    out: TextIO = sys.stdout,
) -> None:
    """Serve until interrupted. `port` 0 picks a free one; the first line printed says where it listens."""
    key = secret_key(secret) if secret else None
    server = ThreadingHTTPServer((host, port), make_handler(key, status, out, threading.Lock()))
    server.daemon_threads = True
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host!s}:{bound_port}/"
    signed = "checking signatures" if key else "not checking signatures (no --secret)"
    out.write(f"listening on {url}, answering {status}, {signed} (Ctrl-C to stop)\n\n")
    out.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
