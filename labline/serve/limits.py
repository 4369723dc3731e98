"""An ASGI middleware that bounds request bodies and records every request's status and latency.

The body is read (up to the limit) before the app sees it, so a client cannot make the service
buffer more than `max_body_bytes`, whether it declares a Content-Length or streams chunks.
"""

import json
import time


async def _send_json(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})


class BodyLimitAndMetrics:
    def __init__(self, app, max_body_bytes: int, metrics, known_paths: set[str]):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.known_paths = known_paths

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        endpoint = scope["path"] if scope["path"] in self.known_paths else "other"
        status = {"code": 500}

        async def send_recording(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            replay = await self._bounded_body(scope, receive, send_recording)
            if replay is not None:
                await self.app(scope, replay, send_recording)
        finally:
            self.metrics.observe(endpoint, status["code"], time.perf_counter() - start)

    async def _bounded_body(self, scope, receive, send):
        """A `receive` that replays the whole body, or None after answering 400/413."""
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return receive
        limit = self.max_body_bytes
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _send_json(send, 400, {"error": "Content-Length: not a number"})
                    return None
                if declared > limit:
                    await _send_json(send, 413, {"error": f"body: {declared} bytes is over the limit of {limit} bytes"})
                    return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await _send_json(send, 413, {"error": f"body: over the limit of {limit} bytes"})
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay():
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay
