"""Virtual ID cards in the vsmartcard ``vpcd`` reader of pcscd.

:class:`VirtualCard` runs any :class:`~cardbridge.emulator.iso7816.Applet` (with its ATR):
the PIV card (:class:`VirtualPivCard`, a :class:`~cardbridge.emulator.piv_card.PivApplet`
with keys and certificates from the development PKI, the same synthetic citizen as the
SoftHSM2 token) and the national ID cards (``cardbridge.emulator.kinds``). It connects
to vpcd as a client on 127.0.0.1 (port 35963 for reader ``Virtual PCD 00 00``, 35964 for
``Virtual PCD 00 01``); it listens on nothing. The vpcd protocol: frames of a 2-byte
big-endian length and a payload; a 1-byte payload is a control (0 power off, 1 power on,
2 reset, 4 send the ATR), any other payload a command APDU answered by one response APDU;
closing the socket removes the card.

Removing and inserting while it runs:

- Python: :meth:`VirtualCard.remove` and :meth:`VirtualCard.insert`.
- A running ``cardbridge dev card``: ``SIGUSR1`` removes the card, ``SIGUSR2`` inserts it
  (``kill -USR1 PID``); the PID is in ``FOLDER/virtual-card-READER/card.pid``, and
  :func:`signal_card` sends them by reader number.

Faults (Python): :meth:`VirtualCard.pull_when` (pulled when a command arrives),
:meth:`VirtualCard.remove_after` (pulled after N more APDUs), :attr:`VirtualCard.delay`
(every answer that much later: a slow card), :meth:`VirtualCard.reset_when` (the card loses
its volatile state — selection, PIN status, security environment — before a command, as
after a reset by another program; pcscd does not know of it, so a driver sees the card's
own status words then, not SCARD_W_RESET_CARD, which only another PC/SC client's
SCARD_RESET_CARD gives).

When pcscd stops, the card waits and connects again when pcscd is back.
Keys are kept in ``FOLDER/virtual-card-READER`` (mode 0700), so a restart gives the same
card; the PIN retry counter lives only as long as the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import signal
import socket
import threading
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from cardbridge.emulator.cardfiles import CardFolder
from cardbridge.emulator.devpki import KEY_CHOICES, Citizen, DevCA, generate_key
from cardbridge.emulator.iso7816 import Applet
from cardbridge.emulator.kinds import (
    PinDefault,
    SetsPinTries,
    card_kind,
    check_not_active,
    check_pin_tries,
    pins_with_defaults,
)
from cardbridge.emulator.piv_card import ATR, PivApplet, PivCardData
from cardbridge.errors import ConfigError, InvalidInputError
from cardbridge.iso7816 import SECRET_INS
from cardbridge.model import Purpose

log = logging.getLogger(__name__)

VPCD_HOST = "127.0.0.1"
VPCD_PORTS = (35963, 35964)
READER_NAMES = ("Virtual PCD 00 00", "Virtual PCD 00 01")
DEFAULT_PIN = "123456"  # PIV PINs are 6 to 8 digits

CTRL_POWER_OFF = 0
CTRL_POWER_ON = 1
CTRL_RESET = 2
CTRL_ATR = 4


def card_folder(folder: Path, reader: int) -> Path:
    """Where the card on ``reader`` keeps its keys and PID file."""
    return folder / f"virtual-card-{reader}"


def load_or_create_card(
    folder: Path, *, key: str = "ec-p256", reader: int = 0, ca: DevCA | None = None, citizen: Citizen | None = None
) -> PivCardData:
    """The card's keys and certificates, made once in ``card_folder(folder, reader)``.

    The CA is ``folder/ca`` (the one the SoftHSM2 token uses) unless ``ca`` is given. A
    different ``key`` type than the stored one makes a new card.
    """
    if key not in KEY_CHOICES:
        raise InvalidInputError(f"Unknown key type {key!r}; choose one of {', '.join(KEY_CHOICES)}.")
    store = CardFolder(card_folder(folder, reader))
    stored = store.load()
    if stored is not None and stored[1].get("key") == key:
        keys, meta = stored
        return PivCardData(keys.auth_key, keys.auth_cert, keys.sign_key, keys.sign_cert, bytes.fromhex(meta["guid"]))
    authority = ca or DevCA.load_or_create(folder / "ca")
    person = citizen or Citizen()
    auth_key, sign_key = generate_key(key), generate_key(key)
    auth_cert = authority.issue(auth_key.public_key(), person, Purpose.AUTHENTICATION)
    sign_cert = authority.issue(sign_key.public_key(), person, Purpose.SIGNING)
    guid = secrets.token_bytes(16)
    keys = store.save(
        auth_key, auth_cert, sign_key, sign_cert, {"key": key, "guid": guid.hex(), "ca": str(authority.cert_path)}
    )
    return PivCardData(keys.auth_key, keys.auth_cert, keys.sign_key, keys.sign_cert, guid)


@dataclass(frozen=True, slots=True)
class ApduRecord:
    """One exchange the card saw (the VERIFY data is never kept)."""

    command: bytes
    response_sw: int

    @property
    def ins(self) -> int:
        return self.command[1]


class VirtualCard:
    """A virtual card (any :class:`Applet`) connected to vpcd from a background thread.

    ``start()`` inserts it; ``remove()``/``insert()`` pull and push it while it runs;
    ``stop()`` removes it and ends the thread. ``apdu_count`` counts command APDUs and
    ``records`` keeps them (VERIFY, CHANGE REFERENCE DATA and RESET RETRY COUNTER data
    dropped) until ``reset_count()``.
    """

    def __init__(
        self,
        applet: Applet,
        *,
        reader: int = 0,
        host: str = VPCD_HOST,
        port: int | None = None,
        atr: bytes | None = None,
    ) -> None:
        if reader not in (0, 1) and port is None:
            raise InvalidInputError("reader is 0 or 1")
        self.applet = applet
        self.applet.on_apdu = self._record
        self.reader = reader
        self.reader_name = READER_NAMES[reader] if reader in (0, 1) else f"vpcd:{port}"
        self.atr = atr if atr is not None else applet.atr
        self._address = (host, port if port is not None else VPCD_PORTS[reader])
        self._want_inserted = threading.Event()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._disconnected = threading.Event()
        self._disconnected.set()
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.records: list[ApduRecord] = []
        self.on_change: Callable[[str], None] | None = None
        self.pull_on_ins: int | None = None
        self.pull_after: int | None = None  # APDUs left before the card is pulled
        self.reset_on_ins: int | None = None
        self.delay = 0.0  # seconds before each answer

    # -- public -------------------------------------------------------------------
    @property
    def apdu_count(self) -> int:
        return len(self.records)

    @property
    def inserted(self) -> bool:
        return self._connected.is_set()

    def reset_count(self) -> None:
        with self._lock:
            self.records.clear()

    def start(self, *, inserted: bool = True) -> VirtualCard:
        if inserted:
            self._want_inserted.set()
        self._thread = threading.Thread(target=self._run, name=f"virtual-card-{self.reader}", daemon=True)
        self._thread.start()
        return self

    def insert(self, *, wait: float | None = 5.0) -> bool:
        """Insert the card; with ``wait``, until vpcd accepted the connection."""
        self._want_inserted.set()
        return self._connected.wait(wait) if wait else True

    def remove(self, *, wait: float | None = 5.0) -> bool:
        """Pull the card out (close the vpcd connection)."""
        self._want_inserted.clear()
        self._close_socket()
        return self._disconnected.wait(wait) if wait else True

    def pull_when(self, ins: int) -> None:
        """Pull the card out when the next command with instruction ``ins`` arrives,
        before it answers (a card yanked mid-operation). Insert it again with insert()."""
        self.pull_on_ins = ins

    def remove_after(self, count: int) -> None:
        """Pull the card out when ``count`` more commands have been answered (the next
        one finds no card)."""
        self.pull_after = count

    def reset_when(self, ins: int) -> None:
        """Reset the card's volatile state once, just before the next command with
        instruction ``ins`` (see the module's docstring)."""
        self.reset_on_ins = ins

    def stop(self) -> None:
        self._stopping.set()
        self.remove(wait=None)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> VirtualCard:
        return self if self._thread else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- internals ------------------------------------------------------------------
    def _record(self, command: bytes, response: bytes) -> None:
        kept = command[:4] if command[1] in SECRET_INS else command  # never keep a PIN
        with self._lock:
            self.records.append(ApduRecord(kept, int.from_bytes(response[-2:], "big")))

    def _close_socket(self) -> None:
        sock = self._sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _notify(self, what: str) -> None:
        log.info("virtual card on %s: %s", self.reader_name, what)
        if self.on_change is not None:
            self.on_change(what)

    def _run(self) -> None:
        while not self._stopping.is_set():
            if not self._want_inserted.wait(0.2):
                continue
            try:
                sock = socket.create_connection(self._address, timeout=2)
            except OSError:
                # vpcd is not there (pcscd stopped): try again soon.
                self._stopping.wait(0.3)
                continue
            sock.settimeout(None)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self.applet.power_off()
            self._disconnected.clear()
            self._connected.set()
            self._notify("inserted")
            try:
                self._serve(sock)
            except OSError:
                pass
            finally:
                self._sock = None
                self._connected.clear()
                with contextlib.suppress(OSError):
                    sock.close()
                self.applet.power_off()
                self._disconnected.set()
                self._notify("removed")
            if self._want_inserted.is_set() and not self._stopping.is_set():
                self._stopping.wait(0.3)  # vpcd went away; do not spin

    def _serve(self, sock: socket.socket) -> None:
        while True:
            header = _recv_exact(sock, 2)
            if header is None:
                return
            payload = _recv_exact(sock, int.from_bytes(header, "big"))
            if payload is None:
                return
            if len(payload) == 1:
                control = payload[0]
                if control in (CTRL_POWER_OFF,):
                    self.applet.power_off()
                elif control in (CTRL_POWER_ON, CTRL_RESET):
                    self.applet.reset()
                elif control == CTRL_ATR:
                    sock.sendall(len(self.atr).to_bytes(2, "big") + self.atr)
                continue
            if (self.pull_on_ins is not None and payload[1] == self.pull_on_ins) or self.pull_after == 0:
                self.pull_on_ins = self.pull_after = None
                self._want_inserted.clear()
                self._notify("pulled mid-operation")
                return
            if self.reset_on_ins is not None and payload[1] == self.reset_on_ins:
                self.reset_on_ins = None
                self.applet.reset()
            if self.delay:
                self._stopping.wait(self.delay)
            response = self.applet.process(payload)
            if self.pull_after is not None:
                self.pull_after -= 1
            sock.sendall(len(response).to_bytes(2, "big") + response)


class VirtualPivCard(VirtualCard):
    """The virtual PIV card: a :class:`PivApplet` with ``data`` and ``pin``."""

    applet: PivApplet

    def __init__(
        self,
        data: PivCardData,
        *,
        pin: str = DEFAULT_PIN,
        reader: int = 0,
        host: str = VPCD_HOST,
        port: int | None = None,
        atr: bytes = ATR,
    ) -> None:
        super().__init__(PivApplet(data, pin), reader=reader, host=host, port=port, atr=atr)


_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        if _QUICKACK is not None:
            # vpcd writes a command's length and its bytes separately, without TCP_NODELAY:
            # its second write waits for our ACK of the first, which Linux would delay by
            # up to 40 ms. Acknowledge at once (the option does not stick: set it each time).
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
        buf += chunk
    return bytes(buf)


def pid_file(folder: Path, reader: int) -> Path:
    return card_folder(folder, reader) / "card.pid"


class _PivKind:
    """``cardbridge dev card --kind piv``: the virtual PIV card."""

    name = "piv"
    title = "PIV card (cardbridge virtual)"
    pins: tuple[PinDefault, ...] = (PinDefault("pin", "PIN", DEFAULT_PIN),)
    keys: tuple[str, ...] = ("ec-p256", "ec-p384", "rsa-2048")
    not_active_pins: tuple[str, ...] = ()

    def create(
        self,
        folder: Path,
        *,
        reader: int,
        key: str | None,
        pins: Mapping[str, str],
        not_active: Collection[str] = (),
    ) -> VirtualCard:
        check_not_active(self, not_active)
        pin = pins.get("pin", DEFAULT_PIN)
        if not (6 <= len(pin) <= 8 and pin.isdigit()):
            raise InvalidInputError("A PIV PIN has 6 to 8 digits.")
        data = load_or_create_card(folder, key=key or self.keys[0], reader=reader)
        return VirtualPivCard(data, pin=pin, reader=reader)


PIV_KIND = _PivKind()


def run_virtual_card(
    folder: Path,
    *,
    kind: str = "piv",
    key: str | None = None,
    reader: int = 0,
    pins: Mapping[str, str | None] | None = None,
    not_active: Collection[str] = (),
    pin_tries: int | None = None,
    on_ready: Callable[[VirtualCard], None] | None = None,
    on_change: Callable[[str], None] | None = None,
    stop: threading.Event | None = None,
) -> None:
    """``cardbridge dev card``: run a card of ``kind`` in the foreground until SIGINT/SIGTERM
    (or ``stop``). ``pins``: by option name (``pin``, ``pin2``, ``puk``); defaults else.
    ``not_active``: the PINs (by option name) the card is issued with not yet activated.
    ``pin_tries``: the holder's PINs personalised with that retry limit (1 to 15) instead of
    the kind's own (the card reports it only where its own commands do).

    SIGUSR1 removes the card, SIGUSR2 inserts it. Call from the main thread (signals).
    ``on_ready`` gets the card once it runs (the CLI prints the reader, PINs and PID file).
    """
    check_pin_tries(pin_tries)
    chosen = card_kind(kind)
    if key is not None and key not in chosen.keys:
        raise InvalidInputError(f"A {kind} card has no {key} key; choose one of {', '.join(chosen.keys)}.")
    card = chosen.create(
        folder, reader=reader, key=key, pins=pins_with_defaults(chosen, pins or {}), not_active=not_active
    )
    if pin_tries is not None:
        if not isinstance(card.applet, SetsPinTries):  # pragma: no cover - every kind has it
            raise InvalidInputError(f"The {chosen.title} cannot be made with another PIN retry limit.")
        card.applet.set_pin_tries(pin_tries)
    card.on_change = on_change
    done = stop or threading.Event()
    pidf = pid_file(folder, reader)
    previous: dict[int, object] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGUSR1:
            card.remove(wait=None)
        elif signum == signal.SIGUSR2:
            card.insert(wait=None)
        else:
            done.set()

    for signum in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, on_signal)
    pidf.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # a kind keeps its keys elsewhere
    pidf.write_text(str(os.getpid()), encoding="utf-8")
    card.start()
    try:
        if on_ready is not None:
            on_ready(card)
        while not done.wait(1.0):
            pass
    finally:
        card.stop()
        with contextlib.suppress(OSError):
            pidf.unlink()
        for number, handler in previous.items():
            signal.signal(number, handler)  # type: ignore[arg-type]


def signal_card(folder: Path, reader: int, action: str) -> int:
    """Remove (``"remove"``) or insert (``"insert"``) the card a running ``dev card`` serves.

    Returns the PID signalled; ConfigError when no card runs for ``reader``.
    """
    chosen = {"remove": signal.SIGUSR1, "insert": signal.SIGUSR2}.get(action)
    if chosen is None:
        raise InvalidInputError("action is 'remove' or 'insert'")
    try:
        pid = int(pid_file(folder, reader).read_text(encoding="utf-8").strip())
        os.kill(pid, chosen)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"No virtual card runs for reader {reader}.") from exc
    return pid
