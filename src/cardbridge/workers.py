"""Bounded waits: card calls on their backend's worker thread (``card_timeout``), and the
person's answers in one operation's dialogs (``user_timeout``).

Card I/O never runs on the event loop: each backend (and each token) names the worker
thread its calls must run on (``executor``); :class:`Workers` submits a call there and
waits for it without blocking the loop. :class:`Deadline` is the time one operation gives
the person, shared by all its dialogs.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from cardbridge.errors import ModuleError, UserTimeoutError

if TYPE_CHECKING:
    from concurrent.futures import Executor

log = logging.getLogger(__name__)
T = TypeVar("T")


class HasWorker(Protocol):
    """A backend or a token: its calls run on ``executor`` (``cardbridge.model.Token``)."""

    @property
    def executor(self) -> Executor: ...


class Workers:
    """Runs blocking card calls on their worker threads, each bounded by ``card_timeout``.

    A card or module that does not answer (a hung PKCS#11 module, a reader that stopped
    talking) gives MODULE_ERROR; its worker is marked hung and refused at once until the
    stuck call returns, so the bridge keeps answering for every other backend.
    """

    def __init__(self, card_timeout: float = 30.0) -> None:
        self.card_timeout = card_timeout
        self._hung: set[int] = set()

    async def run(
        self,
        owner: HasWorker,
        fn: Callable[..., T],
        *args: Any,
        timeout: float | None = None,
        then: Callable[[], None] | None = None,
    ) -> T:
        """``fn(*args)`` on ``owner``'s worker thread, within ``timeout`` (default
        ``card_timeout``).

        ``then`` is called once the call is over — returned, failed, or cancelled before it
        started — even when the caller stopped waiting (a cancel, a timeout); never while
        the call runs. It wipes a PIN the call reads.
        """
        executor = owner.executor
        key = id(executor)
        try:
            if key in self._hung:
                raise ModuleError(
                    "The card reader or its PKCS#11 module stopped answering; unplug the reader or restart."
                )
            work = executor.submit(fn, *args)
        except BaseException:
            if then is not None:
                then()
            raise
        if then is not None:
            work.add_done_callback(lambda _: then())
        future = asyncio.wrap_future(work)
        limit = self.card_timeout if timeout is None else timeout
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for returns the result of a call
        # that ended just as its caller was cancelled, and the login went on after the cancel.
        # The shield keeps the worker's future: the call runs to its end on its thread anyway.
        deadline = asyncio.timeout(limit)
        try:
            async with deadline:
                return await asyncio.shield(future)
        except BaseException as exc:
            # The caller gave up: a call that has not started never will (a status poll must
            # not queue behind a long C_Login); ``then`` still runs, from the cancel.
            work.cancel()
            if not future.done():  # nobody waits for the call any more: its outcome goes nowhere
                future.add_done_callback(forget)
            if not isinstance(exc, TimeoutError) or not deadline.expired():
                raise
            self._hung.add(key)
            future.add_done_callback(lambda _: self._hung.discard(key))
            log.warning("%s did not answer within %.0f s", getattr(owner, "name", "a card"), limit)
            raise ModuleError(f"The card or its PKCS#11 module did not answer within {limit:g} seconds.") from exc


class Deadline:
    """The person's time for one operation, from now (loop time): the question about the
    site, waiting for the card, the choice and the PINs share it, as a page's client waits
    that long for the whole operation."""

    def __init__(self, seconds: float) -> None:
        self.at = asyncio.get_running_loop().time() + seconds

    def left(self) -> float:
        """Seconds left (0 when the time is up)."""
        return max(0.0, self.at - asyncio.get_running_loop().time())

    async def answer(self, dialog: Coroutine[Any, Any, T], late: str) -> T:
        """Wait for a dialog's answer until the time is up: then USER_TIMEOUT (``late``)."""
        deadline = asyncio.timeout_at(self.at)
        try:
            async with deadline:  # not wait_for: see Workers.run
                return await dialog
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise UserTimeoutError(late) from exc


async def end_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (a dialog: its program ends) and wait until it has ended; its outcome
    is retrieved. A cancel of the caller meanwhile still propagates."""
    if task is None:
        return
    task.cancel()
    task.add_done_callback(forget)
    await asyncio.wait({task})


def forget(future: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a call nobody waits for (so asyncio does not report it)."""
    if not future.cancelled():
        future.exception()
