"""A tiny MJPEG-over-HTTP server on 127.0.0.1 serving real video frames.

It stands in for an IP camera: ``multipart/x-mixed-replace`` JPEG parts, as
served by most network cameras and ``mjpg-streamer``. After ``frames`` parts
it drops the connection (a camera that goes away), or keeps repeating when
``frames`` is None.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
import time
from collections.abc import Sequence

import cv2
import numpy as np

BOUNDARY = "cadenceframe"


def jpeg_frames(video: str, count: int, size: tuple[int, int] = (320, 180)) -> list[bytes]:
    capture = cv2.VideoCapture(video)
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok:
            break
        ok, data = cv2.imencode(".jpg", cv2.resize(frame, size), [cv2.IMWRITE_JPEG_QUALITY, 80])
        frames.append(data.tobytes())
    capture.release()
    return frames


class MjpegServer:
    def __init__(self, jpegs: Sequence[bytes], *, frames: int | None, fps: float = 25.0, port: int = 0) -> None:
        self.jpegs = list(jpegs)
        self.frames = frames
        self.fps = fps
        self.served = 0
        self.stopped = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                if self.path != "/stream.mjpg":
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                i = 0
                try:
                    while not server.stopped.is_set() and (server.frames is None or i < server.frames):
                        data = server.jpegs[i % len(server.jpegs)]
                        self.wfile.write(
                            f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n".encode()
                        )
                        self.wfile.write(data)
                        self.wfile.write(b"\r\n")
                        self.wfile.flush()
                        i += 1
                        server.served += 1
                        time.sleep(1.0 / server.fps)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                self.close_connection = True

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", port), Handler)  # port: the same URL again after a restart
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "MjpegServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def blank_jpeg() -> bytes:
    return cv2.imencode(".jpg", np.zeros((8, 8, 3), np.uint8))[1].tobytes()
