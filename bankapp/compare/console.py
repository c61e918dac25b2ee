"""What `bankapp compare` and `bankapp demo` show in the terminal.

A progress bar on stderr while the matrix runs, then the table and a
sentence per row on stdout, and the exit code: 0, 2 when the run cannot go
on (the message says why), 130 when interrupted (Ctrl-C or SIGTERM), with
the server and Locust stopped either way.
"""

from __future__ import annotations

import shutil
import signal
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..server.processes import ProcessError
from .columns import COLUMNS, VERDICT
from .report import write
from .runner import CompareError, Run, execute


class ProgressBar:
    """The matrix's progress on stderr: one bar, the row running, the time taken."""

    def __init__(self, console: Console):
        self.console = console
        self.bar: Progress | None = None
        self.task: TaskID | None = None

    def begin(self, rows: int) -> None:
        self.console.print(f"starting bankapp serve on a free loopback port ({rows} configurations)")
        columns = [TextColumn("{task.description:<28}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%")]
        self.bar = Progress(*columns, TimeElapsedColumn(), console=self.console, transient=False)
        self.bar.start()
        self.task = self.bar.add_task("matrix", total=rows)

    def update(self, done: float, label: str) -> None:
        assert self.bar is not None and self.task is not None, "begin() first"
        self.bar.update(self.task, completed=done, description=label)

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc_info) -> None:
        if self.bar is not None:
            self.bar.stop()


def print_table(rows: list[dict]) -> None:
    """The table, then what each row shows in a sentence."""
    table = Table(title="bankapp: guards compared over HTTP")
    for column in COLUMNS:
        table.add_column(column.short, justify="left" if column.text else "right")
    for row in rows:
        alarm = "red" if not row["ok"] else ""
        table.add_row(*(Text(column.cell(row), style=alarm if column is VERDICT else "") for column in COLUMNS))
    console = Console(width=max(132, shutil.get_terminal_size().columns))
    console.print(table)
    for row in rows:
        console.print(Text.assemble((f"{row['scenario']} / {row['guard']}", "bold"), f": {row['sentence']}"))


def run_command(run: Run, command: str) -> int:
    """`bankapp compare` or `bankapp demo` (`command`) with these options: run, report, print; the exit code."""

    def interrupted(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupted)
    # Ctrl-C too, explicitly: a parent that ignored SIGINT (a shell without job control runs a background
    # command so) passes the ignore on through exec, and Python then leaves it ignored: Ctrl-C did nothing
    signal.signal(signal.SIGINT, signal.default_int_handler)
    began = time.monotonic()
    try:
        with ProgressBar(Console(stderr=True)) as progress:
            rows, folder = execute(run, progress)
    except (CompareError, ProcessError) as error:
        print(f"bankapp {command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"bankapp {command}: interrupted; the server and Locust were stopped", file=sys.stderr)
        return 130
    paths = write(rows, folder, title=f"bankapp {command}")
    print_table(rows)
    print(f"\nreport: {paths['report.html']} (also report.md, results.json, results.csv, anomalies.json, report.png)")
    print(f"took {time.monotonic() - began:.0f} s")
    return 0
