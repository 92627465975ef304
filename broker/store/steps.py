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
network write. Scripts are run through ``broker.store.scripts.ScriptRunner``.

:class:`StepPipeline` goes one further for the HL7 worker: it sends a group's
step and returns, so that the next messages are decoded and mapped while Redis
works, and reads the replies later. It needs what redis-py's public API does not
offer (to write a step and read its replies separately, to wait for them or for
new work): that part is :class:`broker.store.wire.RedisWire`, the one class that
relies on redis-py's internals (its docstring says why, and which versions it
supports). Everything else here uses the public API (a pipeline per round trip).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

import redis
from redis.exceptions import NoScriptError

from broker.errors import store_error
from broker.store.wire import RedisWire

if TYPE_CHECKING:
    from broker.store.scripts import Script

__all__ = ["Command", "StepPipeline", "Steps", "run", "run_all"]

T = TypeVar("T")


@dataclass(frozen=True)
class Command:
    """One Redis command; ``script`` is set for an EVALSHA, loaded again on NOSCRIPT."""

    args: tuple[Any, ...]
    script: Script | None = None


Steps = Generator[list[Command], list[Any], T]
"""An operation: yields each step's commands, is sent their replies, returns its result."""


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
    group = _Lockstep(operations)
    while group.pending:
        try:
            replies = _execute(client, group.commands())
        except redis.RedisError as e:
            group.deliver(e)
        else:
            group.deliver(replies)
    return group.results


class _Lockstep:
    """Operations advanced together: the next step of each goes into one round trip."""

    def __init__(self, operations: Sequence[Steps[Any]]) -> None:
        self._operations = operations
        self.results: list[Any] = [None] * len(operations)
        self.pending: list[tuple[int, list[Command]]] = []  # (operation, its step)
        for index in range(len(operations)):
            self._advance(index, None)

    def commands(self) -> list[Command]:
        """The commands of every pending step, in operation order."""
        return [command for _, step in self.pending for command in step]

    def deliver(self, replies: list[Any] | redis.RedisError) -> None:
        """The replies to :meth:`commands` (or the failure that lost them): the next steps."""
        batch, self.pending = self.pending, []
        if isinstance(replies, redis.RedisError):
            for index, _ in batch:
                self._advance(index, store_error(replies))
            return
        position = 0
        for index, step in batch:
            mine = replies[position : position + len(step)]
            position += len(step)
            failed = next((r for r in mine if isinstance(r, Exception)), None)
            if failed is not None:
                self._advance(index, store_error(failed))
            else:
                self._advance(index, mine)

    def _advance(self, index: int, reply: list[Any] | BaseException | None) -> None:
        operation = self._operations[index]
        try:
            while True:
                if reply is None:
                    step = next(operation)
                elif isinstance(reply, BaseException):
                    step = operation.throw(reply)
                else:
                    step = operation.send(reply)
                if step:
                    self.pending.append((index, step))
                    return
                reply = []  # an empty step needs no round trip
        except StopIteration as done:
            self.results[index] = done.value
        except Exception as e:
            self.results[index] = e


Done = Callable[[list[Any]], None]


class StepPipeline:
    """Groups of operations in flight together on one Redis connection of its own.

    :func:`run_all` waits for each round trip. Here a group's step is sent and
    the caller goes on (to decode and map the next messages, say) while Redis
    executes it; :meth:`receive` later reads the replies of the oldest step sent
    (Redis answers one connection in order), advances that group and sends its
    next step. Each group's operations still run their steps in order, each
    script is still one atomic call, and a group is answered only after Redis
    replied to (so, at ``appendfsync always``, persisted) its last step.

    Used by one thread (``broker.services.batching``). A connection lost with steps
    in flight fails all of them: each operation gets a :class:`StoreError`, as
    with :func:`run_all`.
    """

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._wire = RedisWire(client)
        self._flights: deque[tuple[_Lockstep, list[Command], Done]] = deque()

    def __repr__(self) -> str:
        return f"StepPipeline(in_flight={len(self._flights)})"

    def __len__(self) -> int:
        """How many steps were sent and wait for their replies."""
        return len(self._flights)

    def start(self, operations: Sequence[Steps[Any]], done: Done) -> None:
        """Advance ``operations`` to their first step and send it; ``done`` gets their results."""
        self._dispatch([(_Lockstep(operations), done)])

    def receive(self) -> None:
        """Wait for the replies of the oldest step in flight and send the step after it."""
        group, commands, done = self._flights.popleft()
        try:
            replies = self._wire.read(len(commands))
        except Exception as e:  # the connection is lost, and with it every reply in flight
            self._fail_all([(group, done)], e)
            return
        try:
            replies = _rerun_missing_scripts(self._client, commands, replies)
        except redis.RedisError as e:
            group.deliver(e)
        else:
            group.deliver(replies)
        self._dispatch([(group, done)])

    def reply_ready(self, wakeup: int) -> bool:
        """Wait for the oldest step's replies (True) or for file descriptor ``wakeup`` (False).

        Lets the caller start new work that arrives while Redis is busy, instead of
        waiting for the replies first. Call only with a step in flight.
        """
        return self._wire.ready(wakeup)

    def close(self) -> None:
        """Close the connection (call when nothing is in flight); the next step opens it
        again. The one connection object is kept: the pool counts every one it made."""
        self._wire.close()

    def _dispatch(self, groups: list[tuple[_Lockstep, Done]]) -> None:
        waiting = deque(groups)
        while waiting:
            group, done = waiting.popleft()
            if not group.pending:
                done(group.results)
                continue
            commands = group.commands()
            try:
                self._send(commands)
            except Exception as e:
                waiting.extend(self._fail_all([(group, done)], e, dispatch=False))
                continue
            self._flights.append((group, commands, done))

    def _send(self, commands: list[Command]) -> None:
        args = [c.args for c in commands]
        idle = not self._flights
        try:
            # With nothing in flight, a PING first if the connection was idle past the
            # client's health-check interval (an idle timeout of Redis may have closed
            # it); never with steps in flight: its reply would be read in place of theirs.
            self._wire.send(args, check_health=idle)
        except redis.ConnectionError:
            if not idle:
                raise
            # A connection found closed when writing executed nothing of this step (and
            # nothing else was sent on it): send it again on a new connection, once.
            self._wire.send(args, check_health=False)

    def _fail_all(
        self, groups: list[tuple[_Lockstep, Done]], error: Exception, *, dispatch: bool = True
    ) -> list[tuple[_Lockstep, Done]]:
        failed = groups + [(group, done) for group, _, done in self._flights]
        self._flights.clear()
        self.close()
        reason = error if isinstance(error, redis.RedisError) else redis.RedisError(repr(error))
        for group, _ in failed:
            group.deliver(reason)
        if dispatch:
            self._dispatch(failed)
        return failed


def _execute(client: redis.Redis, commands: list[Command]) -> list[Any]:
    """One pipeline (no MULTI); error replies are returned in place, not raised."""
    return _rerun_missing_scripts(client, commands, _pipeline(client, commands))


def _rerun_missing_scripts(
    client: redis.Redis, commands: list[Command], replies: list[Any]
) -> list[Any]:
    """Replies with every NOSCRIPT answer replaced by the reply of a second run."""
    missing = [i for i, r in enumerate(replies) if isinstance(r, NoScriptError)]
    if missing:  # the script cache was flushed (a Redis restart): load, then run those again
        for script in {id(s): s for i in missing if (s := commands[i].script)}.values():
            client.script_load(script.source)
        again = _pipeline(client, [commands[i] for i in missing])
        for i, reply in zip(missing, again, strict=True):
            replies[i] = reply
    return replies


def _pipeline(client: redis.Redis, commands: list[Command]) -> list[Any]:
    return RedisWire.round_trip(client, [command.args for command in commands])
