"""One login on the demo portal in headless Chromium, driven by Playwright.

Debian's Chromium (``/usr/bin/chromium``, or ``$CARDBRIDGE_CHROMIUM``) is used; a browser
is never downloaded. The login page's button is pressed as a person would, the JS client
asks the bridge, and the function returns when the citizen page shows a name (or raises
with the code the login page showed).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass

from cardbridge.errors import CardbridgeError, Code, ConfigError

ENV_CHROMIUM = "CARDBRIDGE_CHROMIUM"
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


class BrowserLoginError(CardbridgeError):
    """The login page showed an error; ``code`` is the one it showed (INTERNAL if unknown)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = Code(code) if code in Code.__members__ else Code.INTERNAL
        self.page_code = code


@dataclass(frozen=True, slots=True)
class BrowserLogin:
    """What the browser saw at the end of a login."""

    url: str
    name: str  # the name on the citizen page
    id_value: str  # the fødselsnummer (or identifier) on the citizen page


def find_chromium() -> str:
    """``$CARDBRIDGE_CHROMIUM``, else Debian's Chromium; ConfigError when there is none."""
    override = os.environ.get(ENV_CHROMIUM)
    if override:
        if not os.access(override, os.X_OK):
            raise ConfigError(f"{ENV_CHROMIUM}={override} is not an executable program.")
        return override
    for path in CHROMIUM_CANDIDATES:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("chromium")
    if found:
        return found
    raise ConfigError("Chromium is not installed (Debian: apt-get install chromium).")


async def login_in_headless_chromium(url: str, *, timeout: float = 90.0) -> BrowserLogin:
    """Open the demo portal's login page at ``url``, log in, return the citizen page's data."""
    try:
        from playwright.async_api import Error as PlaywrightError
        from playwright.async_api import async_playwright
    except ImportError as exc:
        raise ConfigError("The playwright package is missing (pip install playwright).") from exc
    chromium = find_chromium()
    ms = timeout * 1000
    with tempfile.TemporaryDirectory(prefix="cardbridge-chromium-") as home:
        try:
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=chromium, headless=True, args=list(CHROMIUM_ARGS), env={**os.environ, "HOME": home}
                )
                try:
                    page = await browser.new_page()
                    await page.goto(url, timeout=ms)
                    await page.wait_for_selector("#login[data-ready=true]", timeout=ms)
                    await page.click("#login-button", timeout=ms)
                    done = page.locator("#citizen-name, #error[data-code]")
                    await done.first.wait_for(timeout=ms)
                    error = page.locator("#error[data-code]")
                    if await error.count():
                        code = await error.get_attribute("data-code") or "INTERNAL"
                        raise BrowserLoginError(code, f"The login page showed: {await error.inner_text()}")
                    return BrowserLogin(
                        url=page.url,
                        name=await page.locator("#citizen-name").inner_text(),
                        id_value=await page.locator("#citizen-id").inner_text(),
                    )
                finally:
                    await browser.close()
        except PlaywrightError as exc:
            raise BrowserLoginError("INTERNAL", f"Chromium failed: {str(exc).splitlines()[0]}") from exc
