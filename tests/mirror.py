"""A Fashion-MNIST mirror on loopback for download tests: no test reaches the internet.

with LoopbackMirror() as m:            # serves the four real .gz files from the installed dataset
    os.environ["FMNIST_DATA_MIRROR"] = m.url
LoopbackMirror(files={name: b"junk"})  # or whatever bytes a test wants served; a missing name is a 404
"""

from __future__ import annotations

import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from fmnist.data import RAW_SHA256, find_data_dir


class LoopbackMirror:
    def __init__(self, files: dict[str, bytes] | None = None) -> None:
        if files is None:
            root = find_data_dir()
            files = {name: (root / name).read_bytes() for name in RAW_SHA256}
        self.files = files
        self.requests: Counter[str] = Counter()
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                mirror.requests[name] += 1
                body = mirror.files.get(name)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fashion/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackMirror:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
