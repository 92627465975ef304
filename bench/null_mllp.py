"""A null MLLP server: frames in, a fixed ACK out, nothing else. The ingest ceiling.

Uses the broker's own MLLP server (same framing, same asyncio streams) with a
handler that does no HL7 work, so the difference to the broker is the cost of
decoding, mapping, storing and logging. Prints ``NULL MLLP 127.0.0.1:<port>``.
"""

from __future__ import annotations

import asyncio
import signal

from broker.mllp.server import MLLPServer

ACK = b"MSH|^~\\&|NULL||RIS||20261125000000||ACK^O01^ACK|1|P|2.3.1\rMSA|AA|1\r"


async def _handle(raw: bytes, peer: str) -> bytes:
    return ACK


def _reject(raw: bytes, reason: str, peer: str) -> bytes | None:
    return ACK


async def _main() -> None:
    server = MLLPServer(
        _handle, _reject, host="127.0.0.1", port=0,
        max_frame_bytes=1 << 20, idle_timeout=300, max_connections=64,
    )  # fmt: skip
    await server.start()
    print(f"NULL MLLP 127.0.0.1:{server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(5.0)


if __name__ == "__main__":
    asyncio.run(_main())
