"""Entry point of the `completion` command: the CLI, with Ctrl-C handled from the first moment.

Importing the CLI imports torch, which takes seconds; a Ctrl-C then would otherwise end in a
traceback instead of the CLI's one-line "interrupted"."""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from .cli import main
    except KeyboardInterrupt:
        if "--debug" in sys.argv:
            raise
        sys.stderr.write("interrupted\n")
        sys.exit(130)
    main()
