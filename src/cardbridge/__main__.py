"""The ``cardbridge`` command's entry point (and ``python -m cardbridge``).

The two commands that must start fast go without loading the command line (``cardbridge.cli``: its
parser, its messages, logging, asyncio): ``cardbridge --version``, and ``cardbridge
native-host``, whose handshake the browser waits for. Everything else is ``cli.main``.
"""

import sys


def main() -> int:
    arguments = sys.argv[1:]
    if arguments == ["--version"]:
        from cardbridge import __version__

        sys.stdout.write(f"cardbridge {__version__}\n")  # what the parser's --version prints
        return 0
    if arguments[:1] == ["native-host"] and not {"-h", "--help"} & set(arguments):
        from cardbridge.nativemsg.host import launch

        launch(arguments[1:])  # serves one request and ends the process
    from cardbridge.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    raise SystemExit(main())
