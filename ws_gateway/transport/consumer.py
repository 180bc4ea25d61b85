"""The WebSocket consumer: a transport and nothing else.

It accepts the socket, sends ``gateway.ready``, hands text frames to the
connection's :class:`~ws_gateway.rpc.dispatch.Dispatcher`, writes layer
messages (session events, broadcasts) to the socket, and on disconnect hands
the teardown to a worker thread. It never touches the ORM on the loop.
"""

from __future__ import annotations

import logging
from typing import Any

from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import get_channel_layer

from .. import framing, lifecycle, logs, metrics
from ..auth import Identity
from ..backplane import backplane, connection_id
from ..errors import CLOSE_TOO_LARGE
from ..events.outbox import event_frame, outbox
from ..rpc.dispatch import Dispatcher
from . import policy
from .connection import Connection, connections
from .daphne import TransportView, server_send, transport_view

log = logging.getLogger(__name__)


class GatewayConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels has no types
    """Speaks the gateway protocol on one socket."""

    conn: Connection | None = None
    transport: TransportView | None = None
    dispatcher: Dispatcher | None = None
    close_reason = "not_connected"
    counted = False  # in the connections gauge

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # One source of messages (the socket): a plain loop instead of Channels'
        # await_many_dispatch, which builds a task and an asyncio.wait per message.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        self._frame_send = server_send(send)
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes old DB connections (a thread hop) before every
        # message; this consumer never uses the ORM on the loop, so skip it.
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        await lifecycle.start(get_channel_layer())
        peer = policy.peer(self.scope)
        self.transport = transport_view(self.base_send)
        if self.transport is not None:
            self.transport.limit_messages(framing.max_message_bytes(), CLOSE_TOO_LARGE)
        # Accepted first, then closed: a refusal before the handshake would reach the
        # client as a bare HTTP 403, without the close code that says why.
        await self.accept()
        admitted = policy.admit(self.scope)
        if not isinstance(admitted, Identity):
            self.close_reason, code = admitted
            policy.log_refusal(self.scope, self.close_reason, code)
            await self.close(code)
            return
        self.conn = Connection(
            connection_id(backplane.channel),
            user_id=admitted.user_id,
            is_staff=admitted.is_staff,
            peer=peer,
            send_text=self._send_text,
            close=self.close,
            transport=self.transport,
        )
        # This task's lines (and those of the tasks it starts) name the connection.
        logs.conn_id.set(self.conn.id)
        try:
            await self.send(
                text_data=event_frame({"type": "gateway.ready", "payload": policy.ready_payload()})
            )
        except Exception:
            self.close_reason = "ready_send_failed"
            await self.conn.shutdown()
            await self.close()
            return
        self.close_reason = "connected"
        metrics.connections.inc()
        self.counted = True
        connections[self.conn.id] = self.conn
        outbox.connections.add(self.conn)
        self.dispatcher = Dispatcher(self.conn)
        log.debug("ws accepted peer=%s via=%s", peer, admitted.via)

    async def _send_text(self, text: str) -> None:
        await self._frame_send({"type": "websocket.send", "text": text})

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if self.dispatcher is None or self.conn is None:
            return
        self.conn.stats.messages += 1
        text = message.get("text")
        # daphne refuses an oversized message itself (limit_messages); other servers pass it on.
        if text is not None and not framing.fits(text, framing.max_message_bytes()):
            self.close_reason = "message_too_large"
            await self.conn.close(CLOSE_TOO_LARGE)
        elif text is not None:
            self.dispatcher.handle_text(text)
        else:
            self.dispatcher.handle_binary()

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        metrics.closes.labels(str(message.get("code"))).inc()
        conn = self.conn
        if self.counted:
            metrics.connections.dec()
        if conn is not None:
            if self.transport is not None and self.transport.refused_too_large:
                self.close_reason = "message_too_large"
            elif self.close_reason == "connected":
                self.close_reason = f"client_disconnect(code={message.get('code')})"
            connections.pop(conn.id, None)
            if self.dispatcher is not None:
                self.dispatcher.close()
            attached = list(conn.cursors)
            await conn.shutdown()
            reaped, detached = await policy.closed(conn.id, attached)
            conn.stats.reaped_sessions += reaped
            conn.stats.detached_sessions += detached
            s = conn.stats
            log.info(
                "ws closed peer=%s reason=%s messages=%d parse_errors=%d dispatch_crashes=%d "
                "send_failures=%d reaped_sessions=%d detached_sessions=%d",
                conn.peer,
                self.close_reason,
                s.messages,
                s.parse_errors,
                s.dispatch_crashes,
                s.send_failures,
                s.reaped_sessions,
                s.detached_sessions,
            )
        raise StopConsumer()
