"""One TCP port into another network namespace: how the production stack's SeaweedFS shows only its
S3 gateway. `weed mini` runs in a network namespace of its own (`unshare -n`), where its master,
volume and filer ports answer nobody on the host; this forwarder listens on the host's 127.0.0.1
and connects, from inside that namespace, to the gateway alone.

    python -m stacks.forward LISTEN_PORT NETNS_PATH TARGET_PORT

The listening socket is made first, in the host's namespace; then this process joins the target
namespace (setns), so every connection it opens after that is made there.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import socket
import sys

CLONE_NEWNET = 0x40000000


def enter_namespace(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open(path, os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {path}: {os.strerror(err)}")
    finally:
        os.close(fd)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(1 << 16):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def _serve(listener: socket.socket, target_port: int) -> None:
    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", target_port)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(_pipe(client_r, server_w), _pipe(server_r, client_w))

    server = await asyncio.start_server(relay, sock=listener)
    async with server:
        await server.serve_forever()


def main(listen_port: int, netns: str, target_port: int) -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", listen_port))
    listener.listen(128)
    enter_namespace(netns)
    print(f"forwarding 127.0.0.1:{listen_port} to port {target_port} in {netns}", flush=True)
    asyncio.run(_serve(listener, target_port))


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]))
