"""cardbridge: log in to public-sector portals with a national ID card."""

__version__ = "0.1.0"
