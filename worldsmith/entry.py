"""The ``worldsmith`` command's entry point. Importing the CLI takes seconds (torch and every model family); it is
imported here, under the same Ctrl-C handling as the commands, so an interrupt during start-up prints one line
instead of an import traceback. ``worldsmith.cli.main`` handles everything after that."""

from __future__ import annotations

import importlib
import sys


def main() -> None:
    try:
        cli = importlib.import_module("worldsmith.cli")  # the import this function exists to guard
    except KeyboardInterrupt:
        print("interrupted while starting; nothing was done.", file=sys.stderr)
        sys.exit(130)
    cli.main()
