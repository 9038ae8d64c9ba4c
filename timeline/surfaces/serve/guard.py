"""The ASGI layer in front of every page: GET and HEAD only, and the security headers.

Content-Security-Policy: nothing but this server's own script, style sheet and forms; no
inline script or style, no frames, no other origin. Every response also says nosniff, no
referrer, no framing, no caching.
"""
from __future__ import annotations

import json

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]
ALLOWED = ("GET", "HEAD")


class Guard:
    """ASGI middleware: refuses other methods with 405 and adds the headers to every reply."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        """Handle one connection event (HTTP requests guarded, others passed through)."""
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message = {**message, "headers": list(message.get("headers", [])) +
                           [h for h in HEADERS if h[0] not in names]}
            await send(message)

        if scope["method"] not in ALLOWED:
            body = json.dumps({"error": f"error: method {scope['method']} not allowed: this "
                                        f"server only reads (GET, HEAD)"}).encode()
            await send_with_headers({"type": "http.response.start", "status": 405, "headers": [
                (b"content-type", b"application/json"), (b"allow", b"GET, HEAD"),
                (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send_with_headers)
