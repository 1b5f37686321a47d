"""One object per store: the audit log and the incident book of a store.

Made on first use and dropped with the store (weak keys), so every caller holding the
same store object shares one queue, one set of counters, one dispatcher hook.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TypeVar

from tollhouse.store import SqlStore

T = TypeVar("T")


def per_store(make: Callable[[SqlStore], T]) -> Callable[[SqlStore], T]:
    """A getter returning ``make(store)``, made once per store object."""
    made: weakref.WeakKeyDictionary[SqlStore, T] = weakref.WeakKeyDictionary()

    def of(store: SqlStore) -> T:
        obj = made.get(store)
        if obj is None:
            obj = made[store] = make(store)
        return obj

    return of
