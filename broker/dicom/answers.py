"""C-FIND answers built once and sent again while nothing they depend on changed.

Building an answer (``broker.dicom.encoded.encoded_response``: ``build_response``'s
answer with its text values already encoded) costs about as much
as pynetdicom's encoding of it, and a scanner's poll asks the same return keys of
the same entries every time. An answer depends on the entry, the query's shape
(``answer_shape``: its return keys, not the values it matches on), the character
set, the policy for what that set cannot carry and the association's transfer syntax
(which an answer's encoded values are marked as read in); those are the key. The entry
is keyed by identity: the store's entry cache (``broker.store.entry_cache``)
hands out the same Dataset while the stored entry is unchanged and a new one
when it changed, so a changed entry never finds an old answer. The entry is held
by a weak reference, so a cached answer keeps no old entry alive; an id whose
entry is gone (and possibly reused by a new object) is a miss.

An answer is shared by every query and thread that sends it, and its elements other
than text are the entry's own (as are its text elements when ``build_response`` built
it), so nothing may change it after it is built. ``broker.dicom.find`` only yields it; pynetdicom
only encodes it (``pynetdicom.dsutils.encode`` → ``pydicom.filewriter.write_dataset``,
which reads the elements; the one thing it keeps is a ``PersonName``'s encoded
bytes, made with the answer's own Specific Character Set, which the key fixes).

Bounded by a count, least recently used first out (``broker.common.lru``: reads take
no lock, writes do); 0 turns it off. A query over many candidates reads it but
does not fill it (``keep``, decided in ``broker.dicom.find``). Answers are built outside any lock.
"""

from __future__ import annotations

import weakref
from typing import Any

from pydicom.dataset import Dataset

from broker.common.lru import LRU
from broker.dicom.encoded import encoded_response
from broker.dicom.response import AnswerShape, Projection

__all__ = ["AnswerCache", "transfer_syntax"]

_Key = tuple[int, AnswerShape, str, str, tuple[bool, bool]]


def transfer_syntax(context: Any) -> tuple[bool, bool]:
    """(implicit VR, little endian) of a presentation context's transfer syntax."""
    syntax = context.transfer_syntax
    return bool(syntax.is_implicit_VR), bool(syntax.is_little_endian)


class AnswerCache:
    """Up to ``max_answers`` built answers, by entry, query shape, character set, policy."""

    def __init__(self, max_answers: int) -> None:
        if max_answers < 0:
            raise ValueError("max_answers must be 0 (off) or more")
        self._max = max_answers
        self._items: LRU[_Key, tuple[weakref.ref[Dataset], Dataset]] | None = (
            LRU(max_answers) if max_answers else None
        )

    def __repr__(self) -> str:
        return f"AnswerCache(max_answers={self._max}, held={len(self)})"

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0

    def answer(
        self,
        query: Dataset,
        entry: Dataset,
        *,
        shape: AnswerShape,
        character_set: str,
        unrepresentable: str,
        keep: bool = True,
        plan: Projection | None = None,
        encoding: tuple[bool, bool] = (True, True),
    ) -> Dataset:
        """``build_response(query, entry, …)``, or the same answer built before for this
        entry and a query of this ``shape`` (``answer_shape(query)``); a new answer is
        kept only with ``keep``. ``plan``: ``projection(query)``, worked out once per
        query. ``encoding``: the association's transfer syntax (implicit VR, little
        endian), which the answer's text values are encoded for (``encoded_response``).
        Never mutate it."""
        key = (id(entry), shape, character_set, unrepresentable, encoding)
        held = self._items.get(key) if self._items is not None else None
        if held is not None and held[0]() is entry:
            return held[1]
        built = encoded_response(
            query, entry, character_set=character_set, unrepresentable=unrepresentable,
            plan=plan, encoding=encoding,
        )  # fmt: skip
        if keep and self._items is not None:
            self._items.put(key, (weakref.ref(entry), built))
        return built
