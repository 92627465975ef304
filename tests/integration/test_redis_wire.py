"""RedisWire against a real redis-server: commands written now, their replies read later."""

from __future__ import annotations

import os

import redis
from redis.exceptions import ResponseError

from broker.store.wire import RedisWire


def test_replies_are_read_after_the_commands_were_written(redis_client: redis.Redis) -> None:
    wire = RedisWire(redis_client)
    wake_read, wake_write = os.pipe()
    try:
        wire.send([("SET", "k", "v"), ("INCR", "k"), ("GET", "k")], check_health=True)
        assert wire.ready(wake_read)  # the replies, not the wake-up
        set_reply, error, value = wire.read(3)
        assert (set_reply, value) == (b"OK", b"v")  # raw replies: no response callbacks
        assert isinstance(error, ResponseError)  # an error reply answers its own command
        wire.send([("BLPOP", "never-filled", 5)], check_health=False)
        os.write(wake_write, b"\0")
        assert not wire.ready(wake_read)  # new work arrived before the reply
    finally:
        wire.close()  # the BLPOP's reply is never read: the connection goes
        os.close(wake_read)
        os.close(wake_write)
    wire.send([("PING",)], check_health=True)  # a new connection on the next use
    assert wire.read(1) == [b"PONG"]
    wire.close()
