"""Redis work written as steps, so that several messages share each round trip.

A store operation written as a generator yields a list of :class:`Command`
and is sent back their replies; it returns its result. :func:`run` drives one
operation (one pipeline per step); :func:`run_all` drives several in lockstep:
the next step of every operation goes into one pipeline, so N messages handled
together cost one round trip per step instead of N (and, with
``appendfsync always``, Redis writes them with one fsync before it replies).

Nothing about a single operation changes: its commands run in the order it
listed them, each script is still one atomic call, a reply comes only after
Redis executed (and, at ``appendfsync always``, persisted) the command. Commands
of different operations never interleave inside a script; they only share the
network write.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import redis
from redis.commands.core import Script
from redis.exceptions import NoScriptError

from broker.errors import StoreError

__all__ = ["Command", "Steps", "run", "run_all", "script_call"]

T = TypeVar("T")


@dataclass(frozen=True)
class Command:
    """One Redis command; ``script`` is set for an EVALSHA, loaded again on NOSCRIPT."""

    args: tuple[Any, ...]
    script: Script | None = None


Steps = Generator[list[Command], list[Any], T]
"""An operation: yields each step's commands, is sent their replies, returns its result."""


def script_call(script: Script, *args: Any) -> Command:
    """EVALSHA of a registered script with no keys (the scripts take one JSON payload)."""
    return Command(("EVALSHA", script.sha, 0, *args), script)


def run(client: redis.Redis, operation: Steps[T]) -> T:
    """Drive one operation to its result; a Redis failure is raised as StoreError."""
    (outcome,) = run_all(client, [operation])
    if isinstance(outcome, BaseException):
        raise outcome
    return cast(T, outcome)


def run_all(client: redis.Redis, operations: Sequence[Steps[Any]]) -> list[Any]:
    """Drive operations in lockstep; each one's result, or the exception it raised.

    A Redis failure (connection lost, an error reply) is thrown into the
    operations whose step it concerns, as :class:`StoreError`, where they may
    handle it like any call that failed.
    """
    results: list[Any] = [None] * len(operations)
    pending: dict[int, list[Command]] = {}

    def advance(index: int, reply: list[Any] | BaseException | None) -> None:
        operation = operations[index]
        try:
            while True:
                if reply is None:
                    step = next(operation)
                elif isinstance(reply, BaseException):
                    step = operation.throw(reply)
                else:
                    step = operation.send(reply)
                if step:
                    pending[index] = step
                    return
                reply = []  # an empty step needs no round trip
        except StopIteration as done:
            results[index] = done.value
        except Exception as e:
            results[index] = e

    for index in range(len(operations)):
        advance(index, None)
    while pending:
        batch = sorted(pending.items())
        pending.clear()
        commands = [command for _, step in batch for command in step]
        try:
            replies = _execute(client, commands)
        except redis.RedisError as e:
            for index, _ in batch:
                advance(index, StoreError(f"worklist store unavailable: {e}"))
            continue
        position = 0
        for index, step in batch:
            mine = replies[position : position + len(step)]
            position += len(step)
            failed = next((r for r in mine if isinstance(r, Exception)), None)
            if failed is not None:
                advance(index, StoreError(f"worklist store unavailable: {failed}"))
            else:
                advance(index, mine)
    return results


def _execute(client: redis.Redis, commands: list[Command]) -> list[Any]:
    """One pipeline (no MULTI); error replies are returned in place, not raised."""
    replies = _pipeline(client, commands)
    missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
    if missing:  # the script cache was flushed (a Redis restart): load, then run those again
        for script in {id(s): s for i in missing if (s := commands[i].script)}.values():
            client.script_load(script.script)
        again = _pipeline(client, [commands[i] for i in missing])
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    return replies


def _pipeline(client: redis.Redis, commands: list[Command]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command.args)  # type: ignore[no-untyped-call]
    return list(pipe.execute(raise_on_error=False))
