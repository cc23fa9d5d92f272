"""A synthetic camera: an MJPEG-over-HTTP server on loopback playing seeded scenes.

``GET /cam/{code}.mjpg`` streams the camera's current scene as multipart/x-mixed-replace JPEG
(what many IP cameras serve), each connection from the scene's first frame, at the scene's
fps. ``POST /cam/{code}/scene?name=intrusion`` switches a camera's scene (open connections
start it over). When an ``offline`` scene runs out the connection closes and the camera answers
503 until its scene is changed. Threads, not asyncio, so tests can run it beside blocking code.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import cv2

from hazardwatch.ledger import Plant
from simulators.camera_scene import SCENES, Scene

logger = logging.getLogger(__name__)
BOUNDARY = "hwframe"
CACHED_FRAMES = 100


@dataclass
class _Camera:
    scene: Scene
    version: int = 0
    gone: bool = False


class CameraStreamServer:
    def __init__(self, host: str, port: int, cameras: list[str], *, scene: str = "normal", seed: int = 0,
                 width: int = 640, height: int = 360, fps: float = 5.0) -> None:  # fmt: skip
        self._size, self._fps, self._seed = (width, height), fps, seed
        self._lock = threading.Lock()
        self._cameras = {code: _Camera(self._scene(scene)) for code in cameras}
        self._cache: dict[tuple[str, int], bytes] = {}
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer((host, port), self._handler())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    def url(self, code: str) -> str:
        return f"http://127.0.0.1:{self.port}/cam/{code}.mjpg"

    def _scene(self, name: str) -> Scene:
        return Scene(name, self._seed, self._size[0], self._size[1], self._fps)

    def set_scene(self, code: str, name: str) -> None:
        if name not in SCENES:
            raise ValueError(f"unknown scene {name!r} (known: {', '.join(SCENES)})")
        with self._lock:
            camera = self._cameras[code]
            camera.scene, camera.version, camera.gone = self._scene(name), camera.version + 1, False
        logger.info("camera %s plays scene %s", code, name)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="hw-camera-stream", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _stream(self, handler: BaseHTTPRequestHandler, code: str) -> None:
        with self._lock:
            camera = self._cameras[code]
            if camera.gone:
                handler.send_error(503, "camera offline")
                return
            version, scene = camera.version, camera.scene
        handler.send_response(200)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        i, period, next_at = 0, 1.0 / self._fps, time.monotonic()
        while not self._stopping.is_set():
            with self._lock:
                if camera.version != version:
                    version, scene, i = camera.version, camera.scene, 0
            data = self._jpeg(scene, i)
            if data is None:
                with self._lock:
                    camera.gone = camera.version == version
                return
            head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
            try:
                handler.wfile.write(head.encode() + data + b"\r\n")
                handler.wfile.flush()
            except OSError:
                return  # the client went away
            i += 1
            next_at += period
            self._stopping.wait(max(0.0, next_at - time.monotonic()))

    def _jpeg(self, scene: Scene, i: int) -> bytes | None:
        """Frame i of a scene as JPEG; the first frames of each scene are encoded once."""
        key = (scene.name, i)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        image = scene.frame(i)
        if image is None:
            return None
        data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()
        if i < CACHED_FRAMES:
            with self._lock:
                self._cache[key] = data
        return bytes(data)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, format: str, *args: object) -> None:
                logger.debug("camera stream: %s", format % args)

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                code = path.removeprefix("/cam/").removesuffix(".mjpg")
                if not (path.startswith("/cam/") and path.endswith(".mjpg")) or code not in server._cameras:
                    self.send_error(404, "no such camera")
                    return
                with contextlib.suppress(OSError):
                    server._stream(self, code)

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                code = parts.path.removeprefix("/cam/").removesuffix("/scene")
                name = parse_qs(parts.query).get("name", [""])[0]
                if code not in server._cameras or not parts.path.endswith("/scene"):
                    self.send_error(404, "no such camera")
                    return
                try:
                    server.set_scene(code, name)
                except ValueError as err:
                    self.send_error(400, str(err))
                    return
                self.send_response(204)
                self.end_headers()

        return Handler


def _loopback_streams(plant: Plant) -> dict[tuple[str, int], list[str]]:
    """The cameras of a plant this simulator serves: http://127.0.0.1:<port>/cam/<code>.mjpg."""
    served: dict[tuple[str, int], list[str]] = {}
    for enterprise in plant.enterprises:
        for _, camera in enterprise.iter_cameras():
            parts = urlsplit(camera.url)
            loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost")
            if loopback and parts.port and parts.path == f"/cam/{camera.code}.mjpg":
                served.setdefault((str(parts.hostname), parts.port), []).append(camera.code)
    return served


def camera_servers(plant: Plant, seed: int = 0) -> list[CameraStreamServer]:
    """Start one stream server per loopback address the plant's cameras point at.

    A busy address is logged and skipped: the cameras there show offline, the rest of the
    simulated plant runs."""
    servers = []
    for (host, port), codes in _loopback_streams(plant).items():
        try:
            server = CameraStreamServer(host, port, codes, seed=seed)
        except OSError as err:
            logger.warning("camera simulator cannot listen on %s:%s (%s); cameras %s stay dark",
                           host, port, err, ", ".join(codes))  # fmt: skip
            continue
        server.start()
        servers.append(server)
        logger.info("synthetic cameras %s on http://%s:%s/cam/", ", ".join(codes), host, port)
    return servers


def request_scene(plant: Plant, scene: str, camera: str | None = None) -> list[str]:
    """Switch the running simulator's cameras (all, or one) to a scene; returns the cameras switched."""
    switched = []
    for (host, port), codes in _loopback_streams(plant).items():
        for code in codes:
            if camera not in (None, code):
                continue
            url = f"http://{host}:{port}/cam/{code}/scene?name={scene}"
            request = urllib.request.Request(url, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - a loopback http URL
                    switched.append(code)
            except urllib.error.HTTPError as err:
                raise ValueError(f"camera {code}: {err.reason}") from err
            except OSError as err:
                raise ConnectionError(f"no camera simulator answers at {host}:{port}") from err
    return switched
