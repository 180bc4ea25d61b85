"""The reference peer: hermes-agent's own WebSocket gateway (``tui_gateway.ws.handle_ws``) under uvicorn.

    REFVENV/bin/python bench/ref_server.py --port 8766

Run with the interpreter of the bench's reference virtualenv (``hermes-agent`` and ``uvicorn``
installed there, see ``bench/refpeer.py``), never with the project's. Only the mounting is here: a
Starlette app with one WebSocket route at ``/api/ws`` handing the socket to the reference's handler,
as its documentation shows. ``HERMES_HOME`` should point at a scratch directory.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from tui_gateway.ws import handle_ws


async def endpoint(ws: WebSocket) -> None:
    await handle_ws(ws)


app = Starlette(routes=[WebSocketRoute("/api/ws", endpoint)])

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, lifespan="off")
