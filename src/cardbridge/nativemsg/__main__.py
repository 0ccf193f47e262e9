"""``python -m cardbridge.nativemsg``: the native host without the rest of the command line.

The same as ``cardbridge native-host``, without loading the CLI's parser, messages and
asyncio, so the browser gets the handshake fast.
"""

from cardbridge.nativemsg.host import launch

launch()
