"""`bankapp isolation`: the matrix in the terminal (rich) or as JSON, and the exit code.

Exit 0 when every cell agrees with Hermitage's published PostgreSQL result,
1 when one does not (the cell is flagged), 2 when there is nothing to run on
(no `--database-url` and no `BANKAPP_DATABASE_URL`, or an unreachable one).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

from ..settings import ENV_PREFIX

if TYPE_CHECKING:
    from .matrix import Matrix


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "isolation",
        help="run Hermitage's anomaly cases on PostgreSQL at each isolation level",
        description="Run Hermitage's cases (G0, G1a, G1b, G1c, OTV, PMP, P4, G-single, G2-item, G2) as real "
        "sessions stepped in a fixed order under read committed, repeatable read and serializable, in a scratch "
        "schema created and dropped on the database; print each cell's result judged from what the sessions "
        "read, wrote and raised, beside Hermitage's published result. Exit 0 when all agree, 1 when not.",
    )
    parser.add_argument(
        "--database-url",
        help=f"libpq URL of the PostgreSQL database [env {ENV_PREFIX}DATABASE_URL, the server's setting]",
    )
    parser.add_argument("--json", action="store_true", help="print {cases: [...], agrees} instead of the table")


def command(args: argparse.Namespace) -> int:
    from . import IsolationError, run

    url = args.database_url or os.environ.get(ENV_PREFIX + "DATABASE_URL", "").strip()
    if not url:
        print(f"bankapp isolation: --database-url (or {ENV_PREFIX}DATABASE_URL) is needed", file=sys.stderr)
        return 2
    try:
        matrix = run(url)
    except IsolationError as error:
        print(f"bankapp isolation: {error}", file=sys.stderr)
        return 2 if "database_url" in str(error) else 1
    if args.json:
        print(json.dumps(matrix.to_json(), indent=2))
    else:
        print_matrix(matrix)
    return 0 if matrix.agrees else 1


def print_matrix(matrix: Matrix) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from .cases import CASES
    from .hermitage import LEVELS

    table = Table(title="Hermitage's anomalies on PostgreSQL, as this server ran them")
    table.add_column("case")
    for level in LEVELS:
        table.add_column(level)
    for case in CASES:
        row = [Text(f"{case.name}\n{case.title}", style="bold")]
        for level in LEVELS:
            cell = matrix.cell(case.name, level)
            text = Text(cell.result + (f" ({cell.how})" if cell.how else ""))
            text.stylize("green" if cell.result == "prevented" else "yellow")
            text.append(" *" if cell.hermitage_scripted else "")
            if not cell.agrees:
                text.append(f"\nDIFFERS: Hermitage says {cell.hermitage}", style="bold red")
            row.append(text)
        table.add_row(*row, end_section=True)
    console = Console(width=max(Console().width, 100))
    console.print(table)
    disagree = [cell for cell in matrix.cells if not cell.agrees]
    console.print(
        "* scripted in Hermitage's postgres.md; the other cells are its README's table. "
        "how: blocked = waited on a row lock, snapshot = the reader saw the old version, "
        "40001 = serialization failure."
    )
    if disagree:
        console.print(f"{len(disagree)} of {len(matrix.cells)} cells differ from Hermitage:", style="bold red")
        for cell in disagree:
            console.print(
                f"  {cell.case} at {cell.level}: {cell.result} here ({cell.why}); Hermitage: {cell.hermitage}"
            )
    else:
        console.print(f"All {len(matrix.cells)} cells agree with Hermitage's PostgreSQL result.")
