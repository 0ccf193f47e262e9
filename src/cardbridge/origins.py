"""Which websites may use the ID card: the policy and the person's own answers.

The decision for an origin (already checked and serialized by ``authtoken.check_origin``):

1. on ``denied_origins`` (the system's or the user's config): refused;
2. on ``allowed_origins``: allowed;
3. ``origin_policy = "allow-list"``: refused (only listed sites pass);
4. ``origin_policy = "ask"`` (the default): allowed when the person allowed it before
   (remembered in the per-user state file); refused for a while (:data:`REFUSAL_PAUSE`)
   after the person refused it, so a site cannot raise dialog after dialog; refused too
   while the questions are paused for every site (below); otherwise the person is asked,
   once.

A page could get round the pause of one site by asking from ever-new origins (a fresh
subdomain for each request). So the questions are limited for all sites together, for
the user (every bridge process: the native host runs once per request):

- at most one question about a website is open at a time (:meth:`OriginStore.asking`,
  an ``flock`` that the process showing the question holds): another gets BUSY at once;
- after :data:`QUESTION_LIMIT` refusals (Cancel; a question left unanswered pauses only
  its own site) within
  :data:`QUESTION_WINDOW`, whichever sites they were for, no new site is asked about
  until fewer than that many lie in the window: it is refused at once, with no dialog.
  Sites the person or the administrator allowed are not affected; ``cardbridge origins
  allow`` lets a site in ahead.

The state file is ``origins.json`` in the user's state folder
(``~/.local/state/cardbridge`` on Linux; ``$CARDBRIDGE_STATE_DIR`` overrides), mode 0600.
Several bridge processes (the native host runs once per request) may use it at once: every
change is made under an exclusive ``flock`` and written atomically.

A decision reads the file once (:meth:`OriginStore.answers`) and tests every condition on
that one reading, so its parts never see different versions. The reading is kept while the
file's identity (device, inode, size, modification and change times) stays the same: a
decision that finds the file unchanged costs one ``stat`` and no parse, and one that finds
it changed (by any process: every change replaces the file) reads it again. A reading taken
while the file was younger than :data:`_SETTLED` is not kept, so that a change in the same
tick of the file system's clock (same times, a reused inode, same size) cannot hide behind
it. All of this is blocking file I/O: callers on an event loop run it on a worker thread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import enum
import fcntl
import json
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from cardbridge.config import APP, Config
from cardbridge.errors import BusyError, ConfigError, OriginNotAllowedError

ENV_STATE_DIR = "CARDBRIDGE_STATE_DIR"
REFUSAL_PAUSE = 30.0  # seconds a refused site cannot ask again
QUESTION_LIMIT = 3  # refusals, of any sites, within QUESTION_WINDOW that pause every question
QUESTION_WINDOW = 300.0  # seconds
_MAX_ENTRIES = 1000  # the file stays small whatever sites do
# How old (by its change time) the file must be for a reading of it to be kept: longer than
# the file system's clock tick. Nanosecond timestamps tick with the kernel's coarse clock
# (at most 10 ms); whole-second ones (FAT, ext3, some network file systems) by up to 2 s.
_SETTLED = 0.1
_SETTLED_WHOLE_SECONDS = 2.0


class Decision(enum.StrEnum):
    ALLOW = "allow"
    DENY = "deny"
    ASK = "ask"


def state_dir() -> Path:
    return Path(os.environ.get(ENV_STATE_DIR) or platformdirs.user_state_dir(APP))


@dataclass(frozen=True)
class Remembered:
    """A site the person allowed, and when."""

    origin: str
    allowed_at: str  # ISO 8601, UTC

    def to_dict(self) -> dict[str, str]:
        return {"origin": self.origin, "allowedAt": self.allowed_at}


@dataclass(frozen=True)
class Answers:
    """One reading of the state file: every answer a decision needs, from one version of it."""

    allowed: Mapping[str, str] = field(default_factory=dict)  # origin → when (ISO 8601)
    refused: Mapping[str, float] = field(default_factory=dict)  # origin → when (epoch seconds)
    refusals: tuple[float, ...] = ()  # the person's Cancels, of any sites

    def is_allowed(self, origin: str) -> bool:
        return origin in self.allowed

    def refused_recently(self, origin: str, now: float | None = None) -> bool:
        at = self.refused.get(origin)
        current = time.time() if now is None else now
        return at is not None and 0 <= current - at < REFUSAL_PAUSE

    def questions_paused_for(self, now: float | None = None) -> float:
        """Seconds until a new site may be asked about again (0: it may now): the questions
        pause while :data:`QUESTION_LIMIT` refusals of any sites lie in :data:`QUESTION_WINDOW`."""
        current = time.time() if now is None else now
        recent = sorted(at for at in self.refusals if 0 <= current - at < QUESTION_WINDOW)
        if len(recent) < QUESTION_LIMIT:
            return 0.0
        return recent[-QUESTION_LIMIT] + QUESTION_WINDOW - current


_Identity = tuple[int, int, int, int, int]  # st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns


def _identity(st: os.stat_result) -> _Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _settled(st: os.stat_result, now_ns: int) -> bool:
    """Whether the file changed long enough before ``now_ns`` that any later change gets
    other times (see the module)."""
    whole_seconds = st.st_ctime_ns % 1_000_000_000 == 0 and st.st_mtime_ns % 1_000_000_000 == 0
    margin = _SETTLED_WHOLE_SECONDS if whole_seconds else _SETTLED
    return now_ns - max(st.st_ctime_ns, st.st_mtime_ns) > margin * 1e9


class OriginStore:
    """The person's answers: allowed sites (kept) and recent refusals (for the pause)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "origins.json"
        self._kept: tuple[_Identity, Answers] | None = None  # the last settled reading

    # -- reading --------------------------------------------------------------------------
    def answers(self) -> Answers:
        """The answers as the file holds them now, from one reading (blocking file I/O):
        the kept reading when the file's identity is unchanged (one ``stat``), else a new one."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return Answers()
        except OSError as exc:
            raise ConfigError(f"{self.path}: the list of allowed websites cannot be read: {exc}") from exc
        kept = self._kept
        if kept is not None and kept[0] == _identity(st):
            return kept[1]
        identity, data = self._read()
        answers = Answers(data["allowed"], data["refused"], tuple(data["refusals"]))
        self._kept = (identity, answers) if identity is not None else None
        return answers

    def allowed(self) -> list[Remembered]:
        return [Remembered(o, at) for o, at in sorted(self.answers().allowed.items())]

    def is_allowed(self, origin: str) -> bool:
        return self.answers().is_allowed(origin)

    def refused_recently(self, origin: str, now: float | None = None) -> bool:
        return self.answers().refused_recently(origin, now)

    def questions_paused_for(self, now: float | None = None) -> float:
        """As :meth:`Answers.questions_paused_for`, on the file as it is now."""
        return self.answers().questions_paused_for(now)

    # -- changing -------------------------------------------------------------------------
    def allow(self, origin: str) -> None:
        with self._changing() as data:
            data["refused"].pop(origin, None)
            data["allowed"][origin] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

    def forget(self, origin: str) -> bool:
        """Forget the person's answer for ``origin``; True if there was one."""
        with self._changing() as data:
            had = data["allowed"].pop(origin, None) is not None
            had = data["refused"].pop(origin, None) is not None or had
        return had

    def refuse(self, origin: str, now: float | None = None, *, answered: bool = True) -> None:
        """The person refused ``origin`` (``answered``), or did not answer: its pause; a
        refusal the person gave also counts towards the pause of every question (one left
        unanswered does not: a page could otherwise pause the questions of every new site
        while the person is away, raising questions that nobody answers)."""
        with self._changing() as data:
            current = time.time() if now is None else now
            data["refused"] = {o: at for o, at in data["refused"].items() if current - at < REFUSAL_PAUSE}
            data["refused"][origin] = current
            recent = [at for at in data["refusals"] if current - at < QUESTION_WINDOW]
            data["refusals"] = [*recent[-(_MAX_ENTRIES - 1) :], current] if answered else recent

    @contextlib.contextmanager
    def asking(self) -> Iterator[None]:
        """Hold the one question about a website that may be open for this user, in any
        bridge process, while it is shown; BusyError at once when another is open. (An
        ``flock``: the system releases it when the process ends, however it ends.)"""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name(f".{self.path.name}.question"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BusyError("A question about another website is open; answer it first.") from None
            yield
        finally:
            os.close(fd)

    # -- the file ---------------------------------------------------------------------------
    def _read(self) -> tuple[_Identity | None, dict[str, Any]]:
        """The file's contents, read and parsed now, and the identity of the version read
        when that version may be kept (settled, and unchanged while it was read)."""
        identity: _Identity | None = None
        try:
            with open(self.path, "rb") as fh:
                before = os.fstat(fh.fileno())
                content = fh.read()
                after = os.fstat(fh.fileno())
            if _identity(before) == _identity(after) and _settled(after, time.time_ns()):
                identity = _identity(after)
            raw = json.loads(content)
        except FileNotFoundError:
            raw = {}
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.path}: the list of allowed websites cannot be read: {exc}") from exc
        allowed = raw.get("allowed") if isinstance(raw, dict) else None
        refused = raw.get("refused") if isinstance(raw, dict) else None
        refusals = raw.get("refusals") if isinstance(raw, dict) else None
        return identity, {
            "allowed": {str(k): str(v) for k, v in allowed.items()} if isinstance(allowed, dict) else {},
            "refused": {str(k): v for k, v in refused.items() if isinstance(v, int | float)}
            if isinstance(refused, dict)
            else {},
            "refusals": [at for at in refusals if isinstance(at, int | float)] if isinstance(refusals, list) else [],
        }

    @contextlib.contextmanager
    def _changing(self) -> Iterator[dict[str, Any]]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.path.with_name(f".{self.path.name}.lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _, data = self._read()  # under the lock, always read anew
            yield data
            if any(len(data[key]) > _MAX_ENTRIES for key in ("allowed", "refused", "refusals")):
                raise ConfigError(f"{self.path}: more than {_MAX_ENTRIES} websites; forget some first.")
            tmp = self.path.with_name(f".{self.path.name}.tmp")
            out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(out, "w", encoding="utf-8") as fh:
                json.dump(data, fh, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        finally:
            os.close(fd)


def decide(origin: str, config: Config, store: OriginStore | None = None, now: float | None = None) -> Decision:
    """The decision for ``origin`` (see the module)."""
    if origin in config.denied_origins:
        return Decision.DENY
    if origin in config.allowed_origins:
        return Decision.ALLOW
    if config.origin_policy != "ask":
        return Decision.DENY
    answers = (store or OriginStore()).answers()  # one reading for every test below
    if answers.is_allowed(origin):
        return Decision.ALLOW
    current = time.time() if now is None else now
    if answers.refused_recently(origin, current) or answers.questions_paused_for(current) > 0:
        return Decision.DENY
    return Decision.ASK


class SitePolicy:
    """The policy of one bridge process: the config's lists and ``origin_policy``, and the
    person's answers in ``store``. The service asks it before any card is touched."""

    def __init__(self, config: Config, store: OriginStore | None = None) -> None:
        self.config = config
        self.store = store or OriginStore()

    def decide(self, origin: str) -> Decision:
        """As :func:`decide`; a plain-http origin (``http://localhost``, development only) is
        asked about only when ``allow_http_localhost`` is set, else refused."""
        decision = decide(origin, self.config, self.store)
        if decision is Decision.ASK and not origin.startswith("https://") and not self.config.allow_http_localhost:
            return Decision.DENY
        return decision

    def refusal(self, origin: str) -> OriginNotAllowedError:
        """Why ``origin`` is refused, and what the person (or the administrator) can do."""
        config, where = self.config, self.config.path
        if origin in config.denied_origins:
            return OriginNotAllowedError(f"{origin} is on denied_origins in the configuration.", origin=origin)
        if config.origin_policy != "ask" or not origin.startswith("https://"):
            return OriginNotAllowedError(
                f"{origin} may not use cardbridge. To allow it, add it to allowed_origins in {where}.", origin=origin
            )
        answers, now = self.store.answers(), time.time()  # one reading (blocking file I/O)
        if answers.refused_recently(origin, now):
            return OriginNotAllowedError(
                f"You refused {origin} a moment ago; it may ask again in {REFUSAL_PAUSE:g} seconds.", origin=origin
            )
        wait = max(1, round(answers.questions_paused_for(now)))
        return OriginNotAllowedError(
            f"{QUESTION_LIMIT} websites were refused in the last {QUESTION_WINDOW / 60:g} minutes, so no new "
            f"website is asked about for {wait} seconds. To allow {origin} now: cardbridge origins allow {origin}",
            origin=origin,
        )
