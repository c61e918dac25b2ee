"""The `bankapp` command line (the console script `bankapp = "bankapp.cli:main"`).

- `commands`: the parser, every command and flag, and `main`
- `lessons`: `bankapp lesson N`, a running server put in a lesson's state
- `urls`: `bankapp urls`, what to open once the lab runs
"""

from .commands import chosen_settings, main, make_parser

__all__ = ["chosen_settings", "main", "make_parser"]
