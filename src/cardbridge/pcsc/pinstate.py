"""The tries left of a card's PINs, as the card last said them, kept for one card presence.

A login shows the tries left in the PIN dialog before the PIN is typed, and never asks for a
blocked PIN; reading them costs the card one to three APDUs (an empty VERIFY, a GET DATA,
its GET RESPONSE, a SELECT first). :class:`PinCounters` keeps what the card said — from
that read, and from the answer to every VERIFY the driver sends (``63Cx``: x left, ``6983``:
blocked, ``9000``: the counter is back at its maximum) — so the next login on the same card
shows the count without asking the card again.

The maximum after a ``9000`` is the card's own, never a number the driver assumes: cards of
one country can be personalised with another limit (another issuer profile, a test card).
:meth:`PinCounters.learn_maximum` keeps it per PIN for the card presence, from the card's
answers only: where the card reports it in the PIN state the driver reads anyway (the
Estonian IDEMIA card's ``9A``), or else from the count the card gives in the same
transaction right after its ``9000`` (a right PIN puts the counter back at its maximum: ISO
7816-4), read once per PIN and card presence by the driver
(:meth:`~cardbridge.pcsc.filesystem.FileSystemToken.learn_maximum`). Until the card has told
it, a ``9000`` forgets the count (the next dialog asks the card).

It lives in one :class:`~cardbridge.pcsc.cardtoken.CardToken`, which is bound to one card
presence (reader, ATR, pcsc-lite's insertion/removal counter): a card pulled, swapped or
put back is a new token with nothing known. A count is used only when all of these hold:

- the card told it within :attr:`PinCounters.ttl` seconds (:data:`PIN_STATE_TTL`);
- no PC/SC client other than cardbridge holds a connection to the card now
  (SCARD_STATE_INUSE / SCARD_STATE_EXCLUSIVE when cardbridge's own is closed, checked
  without an APDU): a program that keeps the card open (a browser or signing program with a
  PKCS#11 module such as OpenSC's) may be sending VERIFYs of its own;
- every card operation since ended without an error other than the card refusing a PIN (a
  removal, a reset, a card error forget everything);
- this process has asked no PKCS#11 module for a login since (:mod:`cardbridge.modulelogins`):
  a module loaded beside the direct drivers (OpenSC's) holds the card from inside this
  process, which :mod:`cardbridge.pcsc.clients` does not count as another program, and
  sends a VERIFY only in a C_Login.

Another program that uses the card between two logins and leaves again (connect, VERIFY,
disconnect — e.g. one ``pkcs11-tool --login`` run, or a PIN typed wrongly in another app)
cannot be seen at the PC/SC level: pcsc-lite reports neither its commands nor its reset to a
client that is not connected then. Within the time-to-live the dialog may then show more
tries than are left, or ask for a PIN that the other program blocked. The card still enforces
its own counter: the VERIFY is answered ``63Cx`` or ``6983`` with the true count, the count
here is corrected from that answer, and the error (and the next dialog) says the true number;
no try is spent that the person did not type. A reset by another program does not change a
retry counter, and the drivers never rely on a selection or security environment left from
an earlier transaction (they SELECT, or let the card say it needs one, before any PIN).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from cardbridge import modulelogins

PIN_STATE_TTL = 120.0  # seconds a count from the card is used without asking it again


class PinCounters:
    """Tries left by PIN reference, each with when the card said it (thread-safe)."""

    def __init__(
        self,
        ttl: float = PIN_STATE_TTL,
        clock: Callable[[], float] = time.monotonic,
        module_logins: Callable[[], int] = modulelogins.count,
    ) -> None:
        self.ttl = ttl
        self._clock = clock
        self._known: dict[int, tuple[int, float]] = {}
        self._maximum: dict[int, int] = {}  # the card's own limit by PIN, as it told it
        self._lock = threading.Lock()
        self._module_logins = module_logins
        self._logins_seen = module_logins()

    def _after_module_logins(self) -> None:
        """Forget everything once a PKCS#11 module was asked for a login (under the lock)."""
        logins = self._module_logins()
        if logins != self._logins_seen:
            self._known.clear()
            self._logins_seen = logins

    def get(self, reference: int) -> int | None:
        """The tries left of the PIN ``reference`` if the card said them within the TTL."""
        with self._lock:
            self._after_module_logins()
            known = self._known.get(reference)
            if known is None:
                return None
            tries, when = known
            if self._clock() - when > self.ttl:
                del self._known[reference]
                return None
            return tries

    def put(self, reference: int, tries: int | None) -> None:
        """What the card just said (``None``: it did not give a number — forget the PIN)."""
        with self._lock:
            self._after_module_logins()
            if tries is None or tries < 0:
                self._known.pop(reference, None)
            else:
                self._known[reference] = (tries, self._clock())

    def verified(self, reference: int) -> None:
        """The card answered ``9000`` to a VERIFY: the counter is back at its maximum — kept
        when the card has told the maximum, else forgotten (the next dialog asks the card)."""
        with self._lock:
            maximum = self._maximum.get(reference)
            if maximum is None:
                self._known.pop(reference, None)
            else:
                self._known[reference] = (maximum, self._clock())

    def learn_maximum(self, reference: int, maximum: int) -> None:
        """The PIN's retry limit as the card told it. A fact of the card, not of its state: it
        stays for the card presence (this object's life), past the time to live and
        :meth:`forget`."""
        if maximum > 0:
            with self._lock:
                self._maximum[reference] = maximum

    def maximum(self, reference: int) -> int | None:
        """The PIN's retry limit if the card has told it."""
        with self._lock:
            return self._maximum.get(reference)

    def forget(self, reference: int | None = None) -> None:
        """Forget one PIN's count, or every PIN's (``None``); the limits the card told stay."""
        with self._lock:
            if reference is None:
                self._known.clear()
            else:
                self._known.pop(reference, None)
