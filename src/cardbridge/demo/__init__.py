"""The demo: a demo portal built on :mod:`cardbridge.portal` (:mod:`.portal`), ``cardbridge
demo``'s runner that starts the emulated card, the bridge and that portal (:mod:`.runner`),
and a headless Chromium for its ``--check`` login (:mod:`.headless`), with the demo's own
texts, templates and page assets.

Not for a portal server, which imports :mod:`cardbridge.portal` only; this needs the
``demo`` extra (aiohttp for the portal, Playwright for the headless browser).
"""
