#!/usr/bin/env python3
"""Userspace TCP delay proxy: one process, many listeners, stdlib only.

Used by bench/fleet.py because this kernel has no netem.  For every listener
``listen_addr:listen_port -> target_addr:target_port`` each accepted
connection is forwarded to the target with a *one-way* delay ``d`` added to
every chunk in each direction (so a request/response round trip costs
``RTT = 2 d`` more than on plain loopback).

Design (what makes it a delay *line*, not sleep-then-forward):

* Each direction of each connection has its own FIFO of ``(due, bytes)``.
  A chunk read at time ``t`` is due at ``t + d``; the FIFO is drained by one
  timer (``loop.call_at``) that writes everything already due and re-arms for
  the next due chunk.  Reading never waits for writing, so a stream's
  throughput is not divided by the delay, unrelated connections never wait
  for each other, and order is preserved (due times are non-decreasing).
* Backpressure: if a FIFO holds more than ``HIGH_WATER`` bytes, or the
  destination transport asks us to pause, reading from the source pauses.
* TCP handshake emulation: the kernel answers the client's SYN at once, so a
  real RTT's connection set-up would be missing.  The upstream connection is
  therefore opened only ``3 d`` (= 1.5 RTT) after accept - that is when a
  real server would see the connection and the client's first bytes.
* The proxy's own sockets use TCP_NODELAY (asyncio's default), so it adds no
  Nagle stalls of its own; client/server Nagle behaviour is left as it is.
* EOF is forwarded in order (half-close); a reset on either side aborts both.

Protocol with the parent (bench/fleet.py):
  argv[1] = JSON file: {"one_way_ms": float, "routes": [[laddr, lport, taddr, tport], ...]}
  (lport 0 = let the kernel pick).  When all listeners are bound the proxy
  prints ``READY <json list of [laddr, lport]>`` on stdout.  Then it reads
  commands on stdin, one per line: ``delay <one_way_ms>`` -> prints
  ``OK <ms>``; ``stats`` -> prints ``STATS <json>``; EOF on stdin or SIGTERM
  -> closes everything and exits 0.
"""

from __future__ import annotations

import asyncio
import collections
import json
import signal
import socket
import sys

HIGH_WATER = 1 << 20  # bytes queued per direction before we stop reading


class Config:
    one_way = 0.0  # seconds


STATS = {"connections": 0, "active": 0, "bytes": 0, "errors": 0}


class Pipe:
    """One direction: src transport -> delay FIFO -> dst transport."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.src: asyncio.Transport | None = None
        self.dst: asyncio.Transport | None = None
        self.fifo: collections.deque = collections.deque()
        self.queued = 0
        self.timer: asyncio.TimerHandle | None = None
        self.dst_paused = False
        self.src_paused = False
        self.eof_sent = False
        self.on_eof_delivered = None

    # -- producer side ---------------------------------------------------
    def push(self, data: bytes | None) -> None:
        """data=None means EOF."""
        due = self.loop.time() + Config.one_way
        self.fifo.append((due, data))
        if data:
            self.queued += len(data)
            STATS["bytes"] += len(data)
        self._update_src_reading()
        if self.dst is not None and self.timer is None:
            self._arm()

    # -- consumer side ---------------------------------------------------
    def attach_dst(self, dst: asyncio.Transport) -> None:
        self.dst = dst
        if self.fifo and self.timer is None:
            self._arm()

    def _arm(self) -> None:
        if not self.fifo or self.dst_paused:
            return
        due = self.fifo[0][0]
        if due <= self.loop.time():
            self.timer = self.loop.call_soon(self._flush)
        else:
            self.timer = self.loop.call_at(due, self._flush)

    def _flush(self) -> None:
        self.timer = None
        dst = self.dst
        if dst is None or dst.is_closing():
            return
        now = self.loop.time()
        while self.fifo and self.fifo[0][0] <= now and not self.dst_paused:
            _, data = self.fifo.popleft()
            if data is None:
                self.eof_sent = True
                try:
                    if dst.can_write_eof():
                        dst.write_eof()
                    else:
                        dst.close()
                except OSError:
                    dst.abort()
                if self.on_eof_delivered:
                    self.on_eof_delivered()
                return
            self.queued -= len(data)
            dst.write(data)  # may call pause_writing -> dst_paused
        self._update_src_reading()
        if self.fifo and not self.dst_paused:
            self._arm()

    def set_dst_paused(self, paused: bool) -> None:
        self.dst_paused = paused
        self._update_src_reading()
        if not paused and self.timer is None:
            self._arm()

    def _update_src_reading(self) -> None:
        src = self.src
        if src is None or src.is_closing():
            return
        want_pause = self.dst_paused or self.queued > HIGH_WATER
        if want_pause and not self.src_paused:
            src.pause_reading()
            self.src_paused = True
        elif not want_pause and self.src_paused:
            src.resume_reading()
            self.src_paused = False

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.fifo.clear()


class Conn:
    """A proxied connection: client side <-> upstream side."""

    def __init__(self, loop, target) -> None:
        self.loop = loop
        self.target = target
        self.up = Pipe(loop)  # client -> server
        self.down = Pipe(loop)  # server -> client
        self.client_t: asyncio.Transport | None = None
        self.server_t: asyncio.Transport | None = None
        self.closed = False
        self.eofs = 0
        self.lost = 0
        self.up.on_eof_delivered = self._eof_delivered
        self.down.on_eof_delivered = self._eof_delivered

    def _eof_delivered(self) -> None:
        self.eofs += 1
        if self.eofs >= 2:
            # both halves closed cleanly: let the writes drain, then close
            for t in (self.client_t, self.server_t):
                if t is not None:
                    t.close()

    def abort(self) -> None:
        if self.closed:
            return
        self.closed = True
        STATS["active"] -= 1
        self.up.cancel()
        self.down.cancel()
        for t in (self.client_t, self.server_t):
            if t is not None:
                t.abort()

    async def connect_upstream(self) -> None:
        # emulate the TCP handshake cost: a real server sees the connection 1.5 RTT after connect()
        hold = 3 * Config.one_way
        if hold > 0:
            await asyncio.sleep(hold)
        if self.closed:
            return
        try:
            await self.loop.create_connection(lambda: ServerSide(self), self.target[0], self.target[1])
        except OSError:
            STATS["errors"] += 1
            self.abort()


class Side(asyncio.Protocol):
    def __init__(self, conn: Conn) -> None:
        self.conn = conn

    # subclasses define: self.inbound (Pipe fed by data we read), self.outbound (Pipe writing to us)
    def data_received(self, data: bytes) -> None:
        self.inbound.push(data)

    def eof_received(self):
        self.inbound.push(None)
        return True  # keep our write side open (half-close)

    def pause_writing(self) -> None:
        self.outbound.set_dst_paused(True)

    def resume_writing(self) -> None:
        self.outbound.set_dst_paused(False)

    def connection_lost(self, exc) -> None:
        c = self.conn
        c.lost += 1
        if exc is not None:
            STATS["errors"] += 1
            c.abort()
        elif not c.closed and (c.lost >= 2 or c.server_t is None):
            # we closed both sides after both EOFs were delivered (see Conn._eof_delivered)
            c.closed = True
            STATS["active"] -= 1
        elif not c.closed:
            # one side went away cleanly while the other is still open: close the other one
            # once its pending data has been written (transport.close() flushes first)
            for t in (c.client_t, c.server_t):
                if t is not None and not t.is_closing():
                    t.close()


class ClientSide(Side):
    def __init__(self, target) -> None:
        loop = asyncio.get_running_loop()
        super().__init__(Conn(loop, target))

    def connection_made(self, transport) -> None:
        c = self.conn
        STATS["connections"] += 1
        STATS["active"] += 1
        c.client_t = transport
        self.inbound = c.up
        self.outbound = c.down
        c.up.src = transport
        c.down.attach_dst(transport)
        asyncio.ensure_future(c.connect_upstream())


class ServerSide(Side):
    def connection_made(self, transport) -> None:
        c = self.conn
        c.server_t = transport
        self.inbound = c.down
        self.outbound = c.up
        c.down.src = transport
        c.up.attach_dst(transport)
        if c.closed:
            transport.abort()


async def main(cfg_path: str) -> None:
    with open(cfg_path) as f:
        cfg = json.load(f)
    Config.one_way = float(cfg["one_way_ms"]) / 1000.0
    loop = asyncio.get_running_loop()
    servers = []
    bound = []
    for laddr, lport, taddr, tport in cfg["routes"]:
        srv = await loop.create_server(
            lambda t=(taddr, tport): ClientSide(t), laddr, lport, backlog=1024, reuse_address=True
        )
        servers.append(srv)
        bound.append(list(srv.sockets[0].getsockname()[:2]))
    print("READY " + json.dumps(bound), flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    async def commands() -> None:
        while True:
            line = await reader.readline()
            if not line:
                stop.set()
                return
            parts = line.decode().split()
            if parts and parts[0] == "delay":
                Config.one_way = float(parts[1]) / 1000.0
                print(f"OK {parts[1]}", flush=True)
            elif parts and parts[0] == "stats":
                print("STATS " + json.dumps(STATS), flush=True)

    task = asyncio.ensure_future(commands())
    await stop.wait()
    task.cancel()
    for srv in servers:
        srv.close()


if __name__ == "__main__":
    # Keep socket module referenced for clarity: asyncio enables TCP_NODELAY on TCP transports.
    assert hasattr(socket, "TCP_NODELAY")
    asyncio.run(main(sys.argv[1]))
