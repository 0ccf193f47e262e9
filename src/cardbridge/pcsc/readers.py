"""PC/SC readers: what is in them now, and one worker thread per reader for card I/O."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from cardbridge.model import BackendKind
from cardbridge.pcsc.atr import CardIdentity, identify
from cardbridge.pcsc.scard import STATE_UNAWARE, PcscContext, ReaderStatus

T = TypeVar("T")

BACKEND_NAME = BackendKind.PCSC


@dataclass(frozen=True, slots=True)
class ReaderInfo:
    """One reader for ``cardbridge list``: the card in it (if any), its ATR and name."""

    name: str
    card_present: bool
    card: CardIdentity | None = None
    exclusive: bool = False
    in_use: bool = False
    mute: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "cardPresent": self.card_present,
            "exclusive": self.exclusive,
            "inUse": self.in_use,
        }
        if self.mute:
            out["mute"] = True
        if self.card is not None:
            out["card"] = self.card.to_dict()
        return out

    @classmethod
    def from_status(cls, status: ReaderStatus) -> ReaderInfo:
        """The reader as one SCardGetStatusChange entry describes it."""
        card = identify(status.atr) if status.present and status.atr else None
        return cls(status.name, status.present, card, status.exclusive, status.in_use, status.mute)


def list_readers(context: PcscContext | None = None) -> list[ReaderInfo]:
    """The readers and their cards now (one-shot; blocks briefly). NoReadersError is not
    raised: no readers is ``[]``. ServiceNotRunningError when pcscd does not run."""
    ctx = context or PcscContext()
    try:
        names = ctx.readers()
        if not names:
            return []
        _code, states = ctx.status([(name, STATE_UNAWARE) for name in names], 0)
        return [ReaderInfo.from_status(s) for s in states]
    finally:
        if context is None:
            ctx.release()


class ReaderWorker:
    """One thread and one PC/SC context for all I/O with one reader."""

    def __init__(self, reader: str) -> None:
        self.reader = reader
        self._thread_id: int | None = None
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"pcsc-{reader[:24]}", initializer=self._started
        )
        self.context = PcscContext()  # touched only on the worker thread

    def _started(self) -> None:
        self._thread_id = threading.get_ident()

    def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the worker thread and wait (from any other thread)."""
        if self._thread_id == threading.get_ident():
            return fn()
        return self.executor.submit(fn).result()

    def close(self) -> None:
        def release() -> None:
            self.context.release()

        with contextlib.suppress(Exception):
            self.executor.submit(release).result(timeout=5)
        self.executor.shutdown(wait=False, cancel_futures=True)
