"""The demo portal, run by the package's Python inside the clean root (package_test.py).

    portal.py ORIGIN CA_PEM PORT

Its page's JS client uses the browser extension only (no HTTP API: the bridge port is closed).
"""

import sys
from pathlib import Path

from aiohttp import web

from cardbridge.demo.portal import DemoSettings, create_app

origin, ca, port = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
app = create_app(DemoSettings(origin, (ca.read_bytes(),), bridge_port=1, transport="extension"))
web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)
