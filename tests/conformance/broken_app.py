"""A deliberately non-conforming deployment, for the conformance kit's negative test.

It is the real application with one defect: problem documents go out as ``application/json``
instead of ``application/problem+json``. Served by uvicorn as a real server::

    uvicorn tests.conformance.broken_app:create_broken_app --factory
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annuaire.api import create_app

__all__ = ["create_broken_app"]

_PROBLEM = b"application/problem+json"


def create_broken_app() -> ASGIApp:
    app = create_app()

    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_as_plain_json(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    (name, b"application/json" if value == _PROBLEM else value)
                    for name, value in message.get("headers", [])
                ]
            await send(message)

        await app(scope, receive, send_as_plain_json)

    return broken
