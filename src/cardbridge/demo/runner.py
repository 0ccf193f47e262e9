"""``cardbridge demo``: the emulated ID card, the bridge and the demo portal, on loopback.

:class:`DemoRun` starts the pieces a login needs and stops them again:

- the demo portal (:mod:`cardbridge.demo.portal`) in this process, on
  ``http://localhost:PORT`` (a secure context; it listens on 127.0.0.1 only), trusting the
  development CA of the emulated card;
- the bridge, ``cardbridge serve``, as a child process on a free loopback port: only the
  emulated card (the SoftHSM2 token's module and label, or the built-in driver on the
  virtual card's vpcd reader: :func:`virtual_demo_card`), only the portal's origin allowed (``http://localhost``
  needs ``--allow-http-localhost``, development only), and a config file of its own so the
  user's configuration cannot widen it. Its PIN dialogs come from the program the caller
  names: ``cardbridge dev pinentry`` for the automatic login (with the internal marker
  ``CARDBRIDGE_INTERNAL_DEMO_RUN`` = this process's id, without which the bridge and that
  pinentry refuse), the person's pinentry after.

The CLI prints; nothing here does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp
from aiohttp import web

from cardbridge.config import ENV_DEMO_RUN
from cardbridge.demo.portal import DEMO_STATE, DemoSettings, DemoState, create_app
from cardbridge.emulator.dev_pinentry import ENV_LOG, ENV_PIN
from cardbridge.emulator.softhsm import DevToken
from cardbridge.errors import CardbridgeError, ConfigError
from cardbridge.model import CertificateInfo, Purpose

DEV_PINENTRY = f"{shlex.quote(sys.executable)} -m cardbridge dev pinentry"
BRIDGE_START_TIMEOUT = 30.0


PINENTRY_PROGRAMS = ("pinentry-tty", "pinentry-curses", "pinentry-gnome3", "pinentry-qt")


def person_pinentry(configured: str) -> str:
    """The pinentry program a person answers: ``configured`` when it is installed, else the
    first of Debian's pinentry programs that is (``configured`` when none is)."""
    argv = shlex.split(configured)
    if argv and shutil.which(argv[0]):
        return configured
    return next((name for name in PINENTRY_PROGRAMS if shutil.which(name)), configured)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 and (where there is IPv6) ::1 right now: the one helper
    the demo, the tests and the package test use."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as v4:
            v4.bind(("127.0.0.1", 0))
            port = int(v4.getsockname()[1])
            if not socket.has_ipv6:
                return port
            try:
                with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as v6:
                    v6.bind(("::1", port))
            except OSError:
                continue
            return port


def _listen_loopback() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


@dataclass(frozen=True, slots=True)
class DemoCard:
    """The emulated card a demo logs in with, and how its bridge reaches it."""

    holder: str
    id_code: str
    pin: str
    label: str
    ca_certificate: str
    bridge_args: tuple[str, ...]  # what ``cardbridge serve`` is told to use
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_dev_token(cls, token: DevToken) -> DemoCard:
        """The SoftHSM2 token (``cardbridge dev token create``): only its module and label."""
        return cls(
            token.holder,
            token.id_code,
            token.pin,
            token.label,
            token.ca_certificate,
            ("--module", token.module, "--token", token.label),
            {"SOFTHSM2_CONF": token.softhsm2_conf},
        )


@contextlib.asynccontextmanager
async def virtual_demo_card(kind: str, folder: Path, reader: int = 0) -> AsyncIterator[DemoCard]:
    """A virtual card of ``kind`` (``cardbridge dev card --kind``) in vpcd reader ``reader``
    for the demo, pcscd started when none runs; the bridge uses only the built-in driver on
    that reader. Everything stops when the block ends."""
    from cardbridge.emulator.kinds import card_kind, pins_with_defaults
    from cardbridge.emulator.pcscd import Pcscd

    chosen = card_kind(kind)
    pins = pins_with_defaults(chosen, {})
    daemon = await asyncio.to_thread(Pcscd().start)
    try:
        card = await asyncio.to_thread(lambda: chosen.create(folder, reader=reader, key=None, pins=pins).start())
        try:
            if not await asyncio.to_thread(card.insert, wait=10):
                raise ConfigError("The vpcd reader did not take the virtual card (is vsmartcard-vpcd installed?).")
            certificates = await _certificates_in(card.reader_name)
            auth = next((c for c in certificates if c.purpose is Purpose.AUTHENTICATION), None)
            if auth is None:
                raise ConfigError(f"The virtual {kind} card has no authentication certificate.")
            yield DemoCard(
                auth.holder_name,
                auth.id_code or "",
                pins["pin"],
                f"{chosen.title} in {card.reader_name}",
                str(folder / "ca" / "dev-ca.pem"),
                ("--reader", card.reader_name),
            )
        finally:
            await asyncio.to_thread(card.stop)
    finally:
        await asyncio.to_thread(daemon.stop)


async def _certificates_in(reader: str, timeout: float = 10.0) -> Sequence[CertificateInfo]:
    """The certificates of the card in ``reader`` as the bridge will read them (the service
    with only the built-in driver on that reader), once pcscd reports the card (it polls
    the reader)."""
    from cardbridge.config import Config
    from cardbridge.service import open_service

    service = open_service(Config(), reader=reader)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                listings = await service.list_tokens()
            except CardbridgeError:
                if loop.time() > deadline:
                    raise
            else:
                for listing in listings:
                    if listing.certificates:
                        return listing.certificates
                if loop.time() > deadline:
                    failure = next((listing.error for listing in listings if listing.error), None)
                    raise ConfigError(f"The virtual card in {reader} cannot be read: {failure or 'no certificates'}.")
            await asyncio.sleep(0.2)
    finally:
        await service.aclose()


class DemoRun:
    """The demo portal and the bridge for one emulated card. Use ``async with``."""

    def __init__(self, card: DemoCard | DevToken, *, bridge_port: int | None = None) -> None:
        self.card = card if isinstance(card, DemoCard) else DemoCard.from_dev_token(card)
        self.bridge_port = bridge_port or free_port()
        self._folder = tempfile.TemporaryDirectory(prefix="cardbridge-demo-")
        self.folder = Path(self._folder.name)
        self.dialog_log = self.folder / "dialogs.jsonl"
        self.bridge_log = self.folder / "bridge.log"
        self._sock = _listen_loopback()
        self.portal_port: int = self._sock.getsockname()[1]
        self.origin = f"http://localhost:{self.portal_port}"
        self.url = self.origin + "/"
        ca = Path(card.ca_certificate).read_bytes()
        self.app = create_app(DemoSettings(self.origin, (ca,), bridge_port=self.bridge_port, transport="http"))
        self._runner: web.AppRunner | None = None
        self._bridge: asyncio.subprocess.Process | None = None

    @property
    def portal(self) -> DemoState:
        return self.app[DEMO_STATE]

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}"

    async def __aenter__(self) -> DemoRun:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.stop_bridge()
        finally:
            if self._runner is not None:
                await self._runner.cleanup()
            self._sock.close()
            self._folder.cleanup()

    def bridge_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "cardbridge",
            "serve",
            "--port",
            str(self.bridge_port),
            *self.card.bridge_args,
            "--allow-origin",
            self.origin,
            "--allow-http-localhost",
            "--no-pcsc",
        ]

    async def start_bridge(self, pinentry: str, *, dev_pin: str | None = None) -> None:
        """Start ``cardbridge serve`` with ``pinentry`` as its PIN dialog; wait until it answers.

        ``dev_pin`` is handed to ``cardbridge dev pinentry`` (emulated cards only)."""
        await self.stop_bridge()
        env = {k: v for k, v in os.environ.items() if k not in (ENV_PIN, ENV_LOG, ENV_DEMO_RUN)}
        env.update(
            {
                **self.card.env,
                "CARDBRIDGE_CONFIG": str(self.folder / "bridge-config.toml"),  # none: the defaults
                "CARDBRIDGE_PINENTRY": pinentry,
            }
        )
        if dev_pin is not None:
            env[ENV_PIN] = dev_pin
            env[ENV_LOG] = str(self.dialog_log)
            # This process is the bridge's parent: only then do the bridge and the
            # development pinentry accept to answer dialogs by themselves.
            env[ENV_DEMO_RUN] = str(os.getpid())
        with open(self.bridge_log, "ab") as log:
            self._bridge = await asyncio.create_subprocess_exec(*self.bridge_command(), stdout=log, stderr=log, env=env)
        await self._wait_for_bridge()

    async def _wait_for_bridge(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BRIDGE_START_TIMEOUT
        url = f"{self.bridge_url}/v1/openapi.json"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
            while True:
                if self._bridge is None or self._bridge.returncode is not None:
                    raise ConfigError(f"The bridge (cardbridge serve) stopped: {self.bridge_output()}")
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url) as response:
                        if response.status == 200:
                            return
                if loop.time() > deadline:
                    raise ConfigError(f"The bridge did not answer on {self.bridge_url}: {self.bridge_output()}")
                await asyncio.sleep(0.1)

    def bridge_output(self, limit: int = 2000) -> str:
        """The end of the bridge's log (stdout and stderr)."""
        try:
            text = self.bridge_log.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            return "(no output)"
        return text[-limit:] or "(no output)"

    async def stop_bridge(self) -> None:
        proc, self._bridge = self._bridge, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def dialogs(self) -> list[dict[str, str]]:
        """The PIN dialogs ``cardbridge dev pinentry`` answered (texts, never the PIN)."""
        if not self.dialog_log.exists():
            return []
        return [json.loads(line) for line in self.dialog_log.read_text(encoding="utf-8").splitlines() if line]


def check_login(run: DemoRun, shown_name: str) -> None:
    """The PIN dialog named the portal's origin, the portal verified a login of the
    emulated card's citizen, and the browser showed that name; else raise."""
    if not any(run.origin in dialog.get("setdesc", "") for dialog in run.dialogs()):
        raise CardbridgeError(f"No PIN dialog named the portal's origin {run.origin}.")
    logins = run.portal.logins
    if not logins:
        raise CardbridgeError("The portal verified no login.")
    citizen = logins[-1]
    if citizen.id_code != run.card.id_code:
        raise CardbridgeError(f"The portal verified {citizen.id_code}, not the emulated card's {run.card.id_code}.")
    if shown_name != citizen.name:
        raise CardbridgeError(f"The citizen page shows {shown_name!r}, not {citizen.name!r}.")
