"""A small TCP proxy on 127.0.0.1 for fault injection between the bridge and the simulator.

Modes (set ``proxy.mode`` at any time; it applies to new connections and to the next request on a
kept-alive one):
- ``pass``: forward both ways.
- ``refuse``: accept and reset at once, before a byte of the request is read (to the client this is a
  reset before anything could reach the server).
- ``reset_after_request``: forward the request, wait for the server's first response bytes, then reset
  the client connection instead of passing them on (the server has processed the request).
- ``blackhole``: accept, read, never answer (the client's read timeout fires).
- ``trickle``: forward the answer one byte every ``trickle_s`` (each read is quick; the whole is not).

``rtt_s`` (any mode that forwards): every byte from the server reaches the client ``rtt_s`` after it
left the server, in order, without slowing the bytes behind it: a network's round trip, for requests
made one after the other or side by side on separate connections.

``to_client_bytes`` counts what was passed to the client (response bytes)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from typing import Any


def _reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A black hole: read everything, answer nothing, close when the client does."""
    try:
        while await reader.read(65536):
            pass
    finally:
        writer.close()


class TcpProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1") -> None:
        self.upstream = (upstream_host, upstream_port)
        self.mode = "pass"
        self.trickle_s = 0.1
        self.rtt_s = 0.0
        self.port = 0
        self.connections = 0
        self.to_client_bytes = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.base_events.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> TcpProxy:
        self._thread.start()
        fut = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        fut.result(10)
        return self

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        async def _stop() -> None:
            if self._server is not None:
                self._server.close()
            # connection handlers still running: cancelled and let finish, on the proxy's own loop
            me = asyncio.current_task()
            pending = [t for t in asyncio.all_tasks() if t is not me and not t.done()]
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()  # its self-pipe sockets too (no unclosed loop when warnings are errors)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        mode = self.mode
        if mode == "refuse":
            _reset(writer)
            return
        if mode == "blackhole":
            await _swallow(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            _reset(writer)
            return
        delayed: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        deliverer = asyncio.ensure_future(self._deliver_delayed(writer, delayed))
        try:
            await asyncio.gather(
                self._client_to_server(reader, writer, up_writer),
                self._server_to_client(up_reader, writer, delayed),
                return_exceptions=True,
            )
        finally:
            with contextlib.suppress(RuntimeError):  # closed at exit with the loop already closed
                deliverer.cancel()
            # both sides closed whatever ended the exchange (a stop cancels running handlers)
            for w in (writer, up_writer):
                w.close()

    async def _client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up_writer: asyncio.StreamWriter
    ) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode == "refuse":  # a kept-alive connection: reset before forwarding
                    _reset(writer)
                    return
                if self.mode == "blackhole":
                    continue
                up_writer.write(data)
                await up_writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            up_writer.close()

    async def _server_to_client(
        self,
        up_reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        delayed: asyncio.Queue[tuple[float, bytes]],
    ) -> None:
        try:
            while data := await up_reader.read(65536):
                if self.mode == "reset_after_request":
                    _reset(writer)
                    return
                if self.mode == "trickle":
                    await self._trickle(writer, data)
                    continue
                if self.rtt_s > 0:
                    delayed.put_nowait((self._loop.time() + self.rtt_s, data))
                    continue
                self.to_client_bytes += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            _reset(writer)
            return
        await delayed.join()
        writer.close()

    async def _trickle(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        for k in range(len(data)):
            writer.write(data[k : k + 1])
            await writer.drain()
            self.to_client_bytes += 1
            await asyncio.sleep(self.trickle_s)

    async def _deliver_delayed(self, writer: asyncio.StreamWriter, delayed: asyncio.Queue[tuple[float, bytes]]) -> None:
        while True:
            due, data = await delayed.get()
            try:
                await asyncio.sleep(max(0.0, due - self._loop.time()))
                self.to_client_bytes += len(data)
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                delayed.task_done()
