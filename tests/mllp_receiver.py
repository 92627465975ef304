"""A small HL7 receiver for the outbound tests, run in its own process.

``python -m tests.mllp_receiver --port P --record FILE --answer aa|ae|none`` listens on
127.0.0.1 (port 0: any), prints ``listening <port>`` once it accepts connections,
and for every message appends one JSON line to FILE (flushed and synced before it
answers): its MSH-10, ORC-2, ORC-5, the connection's number and how many connections
were open then. It answers AA, AE (with an ERR segment) or nothing, as told. Killing
it at any moment is the point: what it recorded but did not answer, the sender resends.
With ``--tls-cert`` and ``--tls-key`` it speaks MLLP over TLS; with ``--tls-client-ca``
too it asks for a client certificate signed by that CA (and records its CN).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import ssl
import threading

from broker.mllp.framing import MLLPDecoder, frame

_lock = threading.Lock()
_open = 0
_connections = 0


def _fields(message: str) -> dict[str, list[str]]:
    return {seg.split("|", 1)[0]: seg.split("|") for seg in message.split("\r") if seg}


def _ack(msh: list[str], code: str) -> bytes:
    control = msh[9] if len(msh) > 9 else ""
    segments = [f"MSH|^~\\&|RIS|HOSP|MWL|X|20260101000000||ACK^O01^ACK|A{control}|P|2.5.1",
                f"MSA|{code}|{control}"]  # fmt: skip
    if code == "AE":
        segments.append("ERR||ORC^1^2|207^Application internal error^HL70357|E||||unknown order")
    return "\r".join(segments).encode()


def _serve(
    conn: socket.socket, record: str, answer: str, tls: ssl.SSLContext | None = None
) -> None:
    global _open, _connections
    with _lock:
        _open += 1
        _connections += 1
        number = _connections
    decoder = MLLPDecoder(1 << 20)
    client = ""
    try:
        if tls is not None:  # a failed handshake (an untrusted peer) ends the connection
            conn = tls.wrap_socket(conn, server_side=True)
            subject = (conn.getpeercert() or {}).get("subject", ())
            names = [str(pair[1]) for rdn in subject for pair in rdn if pair[0] == "commonName"]
            client = names[0] if names else ""
        while chunk := conn.recv(65536):
            for payload in decoder.feed(chunk):
                text = payload.decode("utf-8", "replace")
                seg = _fields(text)
                msh, orc = seg.get("MSH", []), seg.get("ORC", [])
                row = {
                    "control": msh[9] if len(msh) > 9 else "",
                    "order": orc[2] if len(orc) > 2 else "",
                    "status": orc[5] if len(orc) > 5 else "",
                    "connection": number,
                    "open": _open,
                    "client": client,
                }
                with _lock, open(record, "a", encoding="utf-8") as out:
                    out.write(json.dumps(row) + "\n")
                    out.flush()
                    os.fsync(out.fileno())
                if answer != "none":
                    conn.sendall(frame(_ack(msh, answer.upper())))
    except OSError:
        pass
    finally:
        with _lock:
            _open -= 1
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--record", required=True)
    parser.add_argument("--answer", choices=["aa", "ae", "none"], default="aa")
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    parser.add_argument("--tls-client-ca")
    args = parser.parse_args()
    tls = None
    if args.tls_cert:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        if args.tls_client_ca:
            tls.load_verify_locations(args.tls_client_ca)
            tls.verify_mode = ssl.CERT_REQUIRED
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(16)
    print(f"listening {server.getsockname()[1]}", flush=True)
    while True:
        conn, _ = server.accept()
        work = (conn, args.record, args.answer, tls)
        threading.Thread(target=_serve, args=work, daemon=True).start()


if __name__ == "__main__":
    main()
