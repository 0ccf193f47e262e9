"""cardbridge: log in to public-sector portals with a national ID card."""

__version__ = "0.1.0"

DEFAULT_PORT = 24231
"""The HTTP API's port on loopback (config ``port``; the JS client's ``DEFAULT_PORT``)."""
