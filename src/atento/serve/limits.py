"""A body-size limit as plain ASGI middleware: 413 (JSON) before the app reads a large body.

A declared Content-Length above the limit is refused at once; a body without one (chunked) is
counted as it arrives and refused once it passes the limit.
"""

from __future__ import annotations

import json


class BodyLimit:
    def __init__(self, app, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0 or size > self.max_bytes:
                await self._refuse(send, size)
                return
            await self.app(scope, receive, send)
            return
        # no Content-Length: read the body here (bounded), then replay it to the app
        chunks, total = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > self.max_bytes:
                await self._refuse(send, total)
                return
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

        await self.app(scope, replay, send)

    async def _refuse(self, send, size: int) -> None:
        message = (
            f"request body of {size} bytes; at most {self.max_bytes}"
            if size >= 0
            else "invalid Content-Length"
        )
        status = 413 if size >= 0 else 400
        body = json.dumps({"error": {"status": status, "message": message, "item": "body"}})
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": body.encode()})
