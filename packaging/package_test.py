"""``make package-test``: the Debian packages installed on a clean Debian 12, as a citizen would.

    unshare --mount --propagation private python packaging/package_test.py CARDBRIDGE.deb WEBEID.deb

1. A clean Debian 12 root from ``mmdebstrap`` with this machine's Debian apt sources (cached
   as a tarball in ``$PKG_CACHE``), unpacked into a fresh folder; ``/proc``, ``/sys``, ``/dev``
   and a private ``/run`` mounted into it. The script runs in a mount namespace of its own
   (``unshare``), so the mounts vanish with it whatever happens; it unmounts them as well.
2. ``apt-get install ./cardbridge_*.deb`` in it (dependencies from Debian's archive; the
   downloaded ``.deb`` files are cached in ``$PKG_CACHE/apt-archives``).
3. In it: ``cardbridge --version``; ``--lang nn`` speaks nynorsk (the .mo files are installed);
   ``cardbridge doctor --json`` finds the manifests, the
   extension and the unit; a SoftHSM2 login through the manifest's launcher (native
   messaging frames over pipes) and through ``cardbridge serve`` (``inside.py``); Debian's
   Chromium with a fresh profile and no extension flags logs in to the demo portal through
   the packaged extension and host (Playwright on this side, over the DevTools protocol).
4. ``cardbridge-webeid``: its manifests and links; an upgrade keeps an edited config;
   ``apt-get purge`` of both leaves nothing behind.

Every step prints its time; the script exits 1 at the first failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cardbridge.demo.headless import CHROMIUM_ARGS
from cardbridge.demo.runner import free_port

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
SUITE = "bookworm"
TARBALL = f"{SUITE}-apt.tar"
# The machine's apt sources, Debian's only (mmdebstrap reads deb822 .sources files).
SOURCES = ("/etc/apt/sources.list.d/debian.sources",)
EXTENSION_ID = "lpofidgjknhefhoajeebdlcfmapohlip"
ORIGIN = "https://login.example.no"
TOOLS = ("softhsm2", "chromium")  # for the test only: Suggests of the package
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C.UTF-8"}
CHROMIUM_FLAGS = ("--headless=new", *CHROMIUM_ARGS)  # the flags cardbridge's own headless Chromium uses


class Failed(Exception):
    pass


def say(text: str) -> None:
    print(f"package-test: {text}", flush=True)


class Chroot:
    """The clean root, its mounts and the processes started in it."""

    def __init__(self, folder: Path) -> None:
        self.root = folder
        self.mounts: list[Path] = []
        self.processes: list[subprocess.Popen[bytes]] = []

    def path(self, inside: str) -> Path:
        return self.root / inside.lstrip("/")

    def mount(self, *args: str, target: str) -> None:
        where = self.path(target)
        where.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", *args, str(where)], check=True)
        self.mounts.append(where)

    def argv(self, command: Sequence[str], env: dict[str, str] | None = None) -> list[str]:
        environment = {"HOME": "/root", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **APT_ENV, **(env or {})}
        return ["chroot", str(self.root), "env", "-i", *(f"{k}={v}" for k, v in environment.items()), *command]

    def run(
        self, *command: str, env: dict[str, str] | None = None, check: bool = True, timeout: float = 1800
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(self.argv(command, env), capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise Failed(
                f"{' '.join(command)} exited {result.returncode}\n--- stdout\n{result.stdout[-4000:]}"
                f"\n--- stderr\n{result.stderr[-4000:]}"
            )
        return result

    def start(
        self, *command: str, env: dict[str, str] | None = None, log: Path | None = None
    ) -> subprocess.Popen[bytes]:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            self.argv(command, env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def processes_inside(self) -> list[int]:
        """Processes whose root is this chroot (all of them started by this test)."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.readlink(entry / "root") == str(self.root):
                        found.append(int(entry.name))
        return found

    def clean_up(self) -> None:
        for process in reversed(self.processes):
            self.stop(process)
        for pid in self.processes_inside():  # e.g. a host or pinentry the browser started
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for where in reversed(self.mounts):
            subprocess.run(["umount", "--recursive", "--lazy", str(where)], check=False)
        self.mounts.clear()


@contextlib.contextmanager
def clean_root(cache: Path) -> Iterator[Chroot]:
    tarball = cache / TARBALL
    if not tarball.exists():
        say(f"making the clean {SUITE} root with mmdebstrap (cached as {tarball})")
        partial = tarball.with_suffix(".partial.tar")
        subprocess.run(
            ["mmdebstrap", "--variant=apt", "--include=ca-certificates", "--skip=output/dev", SUITE, str(partial)]
            + [s for s in SOURCES if os.path.exists(s)],
            check=True,
        )
        partial.rename(tarball)
    chroot = Chroot(Path(tempfile.mkdtemp(prefix="cardbridge-package-test-")))
    try:
        subprocess.run(["tar", "-xf", str(tarball), "-C", str(chroot.root)], check=True)
        chroot.mount("-t", "proc", "proc", target="/proc")
        chroot.mount("--rbind", "/sys", target="/sys")
        chroot.mount("--rbind", "/dev", target="/dev")
        chroot.mount("-t", "tmpfs", "tmpfs", target="/run")
        archives = cache / "apt-archives"
        (archives / "partial").mkdir(parents=True, exist_ok=True)
        chroot.mount("--bind", str(archives), target="/var/cache/apt/archives")
        for name in ("resolv.conf", "hosts"):
            shutil.copyfile(f"/etc/{name}", chroot.path(f"/etc/{name}"))
        # No service starts inside the chroot (pcscd's postinst would): Debian's policy-rc.d.
        policy = chroot.path("/usr/sbin/policy-rc.d")
        policy.write_text("#!/bin/sh\nexit 101\n", encoding="utf-8")
        policy.chmod(0o755)
        # Keep the downloaded packages for the next run.
        chroot.path("/etc/apt/apt.conf.d/01keep").write_text('Binary::apt::APT::Keep-Downloaded-Packages "true";\n')
        chroot.path("/etc/apt/apt.conf.d/docker-clean").unlink(missing_ok=True)
        yield chroot
    finally:
        chroot.clean_up()
        shutil.rmtree(chroot.root, ignore_errors=True)
        if chroot.root.exists():
            say(f"WARNING: could not remove {chroot.root}")


class Steps:
    def __init__(self) -> None:
        self.times: list[tuple[str, float]] = []
        self.started = time.monotonic()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        say(f"{name} …")
        begin = time.monotonic()
        yield
        took = time.monotonic() - begin
        self.times.append((name, took))
        say(f"{name}: ok ({took:.1f} s)")

    def summary(self) -> str:
        lines = [f"  {took:7.1f} s  {name}" for name, took in self.times]
        lines.append(f"  {time.monotonic() - self.started:7.1f} s  total")
        return "\n".join(lines)


def version_of(deb: Path) -> str:
    return subprocess.run(
        ["dpkg-deb", "--field", str(deb), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def upgraded_copy(deb: Path, folder: Path) -> Path:
    """The same package with a higher version (``+upgrade1``): an upgrade dpkg takes as one."""
    tree = folder / "tree"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    version = version_of(deb)
    control.write_text(
        control.read_text().replace(f"Version: {version}\n", f"Version: {version}+upgrade1\n"), encoding="utf-8"
    )
    out = folder / f"cardbridge_{version}+upgrade1.deb"
    subprocess.run(["dpkg-deb", "-Zgzip", "-z1", "-b", str(tree), str(out)], check=True, capture_output=True)
    shutil.rmtree(tree)
    return out


def doctor_finds_the_package(chroot: Chroot) -> None:
    result = chroot.run("cardbridge", "--lang", "en", "doctor", "--json", check=False)
    try:
        report = json.loads(result.stdout)
    except ValueError as exc:
        raise Failed(f"doctor --json printed no JSON:\n{result.stdout}\n{result.stderr}") from exc
    checks = report["checks"] if isinstance(report, dict) else report
    by_id: dict[str, list[dict[str, Any]]] = {}
    for check in checks:
        by_id.setdefault(check["id"], []).append(check)
    manifests = {c.get("data", {}).get("browser"): c for c in by_id.get("manifests", [])}
    for browser in ("chromium", "chrome", "edge", "firefox"):
        check = manifests.get(browser)
        if not check or check["status"] != "ok":
            raise Failed(f"doctor: no good manifest for {browser}: {by_id.get('manifests')}")
    for check_id in ("extension", "service"):
        found = by_id.get(check_id) or [{}]
        if found[0].get("status") != "ok":
            raise Failed(f"doctor: {check_id} not found: {found}")
    say("doctor: " + "; ".join(c["detail"] for k in ("extension", "service") for c in by_id[k]))


async def browser_login(chroot: Chroot, inside: dict[str, Any], logs: Path) -> None:
    """Debian's Chromium in the chroot, a fresh profile, no extension flags: the demo
    portal's login page reaches the packaged extension and host."""
    from playwright.async_api import async_playwright

    env, ca = inside["env"], inside["ca"]
    chroot.path(inside["script"]).write_text(json.dumps({"responses": [env["PIN"]], "log": inside["log"]}))

    portal_port, devtools_port = free_port(), free_port()
    origin = f"http://localhost:{portal_port}"
    portal = chroot.start(
        "/usr/lib/cardbridge/bin/python3", "-I", "/root/tools/portal.py", origin, ca, str(portal_port),
        env=env, log=logs / "portal.log",
    )  # fmt: skip
    chroot.run("rm", "-rf", "/root/profile")
    browser_process = chroot.start(
        "/usr/bin/chromium", *CHROMIUM_FLAGS, "--user-data-dir=/root/profile",
        f"--remote-debugging-port={devtools_port}", "about:blank",
        env={**env, "CARDBRIDGE_CONFIG": "/root/cb/browser-config.toml"}, log=logs / "chromium.log",
    )  # fmt: skip
    config = chroot.path("/root/cb/browser-config.toml")
    config.write_text(
        json_toml({"allowed_origins": [origin], "allow_http_localhost": True, "pkcs11_modules": [env["MODULE"]]})
    )
    config.chmod(0o600)
    deadline = time.monotonic() + 60
    while True:
        try:
            with (
                socket.create_connection(("127.0.0.1", devtools_port), timeout=1),
                socket.create_connection(("127.0.0.1", portal_port), timeout=1),
            ):
                break
        except OSError:
            if time.monotonic() > deadline or browser_process.poll() is not None or portal.poll() is not None:
                raise Failed(f"Chromium or the portal did not start; see {logs}") from None
            await asyncio.sleep(0.2)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(f"http://127.0.0.1:{devtools_port}")
        context = browser.contexts[0]
        context.set_default_timeout(60_000)
        deadline = time.monotonic() + 30
        while not any(EXTENSION_ID in w.url for w in context.service_workers):
            if time.monotonic() > deadline:
                workers = [w.url for w in context.service_workers]
                raise Failed(f"the packaged extension did not load (service workers: {workers})")
            await asyncio.sleep(0.2)
        page = await context.new_page()
        await page.goto(origin + "/?lang=en")
        await page.wait_for_selector("#login[data-ready=true]")
        await page.click("#login-button")
        await page.wait_for_url(f"{origin}/citizen?lang=en")
        name = await page.locator("#citizen-name").inner_text()
        if name != env["HOLDER"]:
            raise Failed(f"the citizen page shows {name!r}, not {env['HOLDER']!r}")
        say(f"browser: logged in as {name} through {EXTENSION_ID}")
        await browser.close()
    chroot.stop(browser_process)
    chroot.stop(portal)


def json_toml(values: dict[str, Any]) -> str:
    """A flat TOML file (strings, booleans, lists of strings): JSON's syntax is TOML's here."""
    return "".join(f"{key} = {json.dumps(value)}\n" for key, value in values.items())


def left_behind(chroot: Chroot) -> list[str]:
    """Anything of either package still on the system after purge."""
    found: list[str] = []
    for package in ("cardbridge", "cardbridge-webeid"):
        status = chroot.run("dpkg-query", "-W", "-f=${Status}", package, check=False).stdout
        if status and "not-installed" not in status:
            found.append(f"dpkg still knows {package}: {status}")
    paths = [
        "/etc/cardbridge", "/usr/lib/cardbridge", "/usr/libexec/cardbridge", "/usr/share/cardbridge",
        "/usr/bin/cardbridge", "/usr/share/chromium/extensions/cardbridge", "/usr/lib/systemd/user/cardbridge.service",
        "/etc/xdg/autostart/cardbridge.desktop", "/usr/share/doc/cardbridge", "/usr/share/man/man1/cardbridge.1.gz",
        "/etc/opt/chrome", "/etc/opt/edge",
    ]  # fmt: skip
    found += [p for p in paths if os.path.lexists(chroot.path(p))]
    for folder in (
        "/etc/chromium",
        "/usr/lib/mozilla",
        "/etc/systemd/user",
        "/var/lib/systemd/deb-systemd-user-helper-enabled",
    ):
        for entry in sorted(chroot.path(folder).rglob("*")) if chroot.path(folder).exists() else []:
            if "cardbridge" in entry.name or entry.name.startswith(("no.cardbridge", "eu.webeid")):
                found.append(str(entry.relative_to(chroot.root)))
    return found


def run_steps(chroot: Chroot, steps: Steps, debs: list[Path], version: str, logs: Path) -> None:
    cardbridge_deb = next(d for d in debs if d.name.startswith("cardbridge_"))
    webeid_deb = next(d for d in debs if d.name.startswith("cardbridge-webeid_"))
    work = chroot.path("/root/debs")
    work.mkdir(parents=True)
    for deb in debs:
        shutil.copy(deb, work)
    with steps.step("apt-get install ./cardbridge_*.deb"):
        chroot.run("apt-get", "update", "-q")
        chroot.run("apt-get", "install", "-y", "-q", f"/root/debs/{cardbridge_deb.name}")
    with steps.step("cardbridge --version"):
        out = chroot.run("cardbridge", "--version").stdout.strip()
        if out != f"cardbridge {version.split('+')[0]}":
            raise Failed(f"cardbridge --version said {out!r}")
    with steps.step("the installed catalogues speak nynorsk"):
        result = chroot.run("cardbridge", "--lang", "nn", "list", "--module", "/nonexistent/module.so", check=False)
        if "Fann ikkje programvara for ID-kortet" not in result.stderr:
            raise Failed(f"cardbridge --lang nn did not speak nynorsk (the .mo files):\n{result.stderr}")
    with steps.step("doctor finds the manifests, the extension and the unit"):
        doctor_finds_the_package(chroot)
    with steps.step("test tools (softhsm2, chromium)"):
        chroot.run("apt-get", "install", "-y", "-q", *TOOLS)
    tools = chroot.path("/root/tools")
    tools.mkdir()
    shutil.copy(PROJECT / "tests" / "tools" / "scripted_pinentry.py", tools / "pinentry")
    (tools / "pinentry").chmod(0o755)
    for name in ("inside.py", "portal.py"):
        shutil.copy(HERE / "package_test" / name, tools / name)
    with steps.step("login through the manifest's launcher and through cardbridge serve"):
        result = chroot.run("/usr/bin/python3", "-I", "/root/tools/inside.py", str(free_port()))
        say(result.stdout.strip().replace("\n", "\n  "))
        env = json.loads(result.stdout.strip().splitlines()[-1])
    with steps.step("Chromium, fresh profile, no extension flags: login on the demo portal"):
        asyncio.run(browser_login(chroot, env, logs))
    with steps.step("cardbridge-webeid"):
        chroot.run("apt-get", "install", "-y", "-q", f"/root/debs/{webeid_deb.name}")
        for link in ("/etc/opt/chrome", "/etc/opt/edge"):
            manifest = f"{link}/native-messaging-hosts/eu.webeid.json"
            data = json.loads(chroot.run("cat", manifest).stdout)  # a link, absolute inside the root
            if data["path"] != "/usr/libexec/cardbridge/cardbridge-native-host":
                raise Failed(f"{manifest}: {data}")
        conflicts = chroot.run("dpkg-query", "-W", "-f=${Conflicts}", "cardbridge-webeid").stdout
        if "web-eid-native" not in conflicts:
            raise Failed(f"cardbridge-webeid conflicts with {conflicts!r}")
    with steps.step("an upgrade keeps the edited system config"):
        config = chroot.path("/etc/cardbridge/config.toml")
        config.write_text(config.read_text() + 'allowed_origins = ["https://login.example.no"]\n')
        upgrade = upgraded_copy(cardbridge_deb, work)
        chroot.run(
            "apt-get", "install", "-y", "-q", "-o", "Dpkg::Options::=--force-confdef",
            "-o", "Dpkg::Options::=--force-confold", f"/root/debs/{upgrade.name}",
        )  # fmt: skip
        if 'allowed_origins = ["https://login.example.no"]' not in config.read_text():
            raise Failed("the upgrade replaced the edited /etc/cardbridge/config.toml")
        installed = chroot.run("dpkg-query", "-W", "-f=${Version}", "cardbridge").stdout
        if not installed.endswith("+upgrade1"):
            raise Failed(f"the upgrade did not happen: {installed}")
    with steps.step("apt-get purge leaves nothing"):
        installed = left_behind(chroot)  # the check sees the packages while they are there
        if len(installed) < 10:
            raise Failed(f"the leftover check does not see the installed packages: {installed}")
        chroot.run("apt-get", "purge", "-y", "-q", "cardbridge-webeid", "cardbridge")
        leftovers = left_behind(chroot)
        if leftovers:
            raise Failed("left after purge:\n  " + "\n  ".join(leftovers))


def main(argv: Sequence[str]) -> int:
    debs = [Path(a).resolve() for a in argv]
    version = version_of(next(d for d in debs if d.name.startswith("cardbridge_")))
    cache = Path(os.environ.get("PKG_CACHE", PROJECT / ".cache" / "package")).resolve()
    logs = Path(tempfile.mkdtemp(prefix="cardbridge-package-test-logs-"))
    steps = Steps()
    try:
        with contextlib.ExitStack() as stack:
            with steps.step("clean Debian 12 root"):
                chroot = stack.enter_context(clean_root(cache))
            run_steps(chroot, steps, debs, version, logs)
    except Exception as exc:
        say(f"FAILED: {type(exc).__name__}: {exc}")
        say(f"logs: {logs}")
        say("times:\n" + steps.summary())
        return 1
    shutil.rmtree(logs, ignore_errors=True)
    say("passed; times:\n" + steps.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
