"""`bankapp serve --exercise NAME=FILE`: a trainee's code plugged into the server, at start-up, on loopback only.

The file is loaded here, in gunicorn's master, before the worker forks
(`bankapp.lab.plugged`), so a file that cannot serve is refused before
anything listens: exit 2 with a plain message. The worker's lab is handed
what it defines, chosen by the value `exercise` of the setting it stands in
for (`--deposit-guard exercise`, `--checkout-guard exercise`,
`--transfer-policy exercise`), which `--exercise` sets unless a flag sets
it otherwise (the file is loaded then, and waits for a `PATCH`). The HTTP API never loads code: there is no
route that takes a file, admin token or not.

Code a trainee wrote runs with the server's rights, so:

- only a server bound to loopback runs it (`--host` 127.0.0.1, ::1 or
  localhost), and only with the memory store (one process);
- the process is given limits before gunicorn starts, which its worker
  inherits (`limit_resources`): address space (`RLIMIT_AS`, so a runaway
  allocation fails with MemoryError instead of taking the machine) and
  processes (`RLIMIT_NPROC`, so a fork loop stops; the kernel exempts root).
  A CPU limit would end a workshop's long-running server, so `serve` sets
  none; `bankapp.exercise.load`, which runs a server for seconds, does.
"""

from __future__ import annotations

import os
import resource
from pathlib import Path
from typing import Any

from ..lab.plugged import EXERCISES, PlugError, Plugged

__all__ = ["PlugError", "chosen", "limit_resources", "parse", "plug_in"]
from ..settings import EXERCISE, Config
from ..web import admin_auth

#: The address space the server may map: its threads' stacks and malloc's arenas are most of it.
ADDRESS_SPACE_BYTES = 4 * 1024**3
#: Processes (threads count) this user may start beyond those running at start: the server's threads, and a margin.
PROCESS_MARGIN = 64


def parse(values: list[str]) -> dict[str, Path]:
    """`["deposit-guard=mine.py"]` as {exercise: path}; `PlugError` for a value that is not NAME=FILE."""
    found: dict[str, Path] = {}
    for value in values:
        name, equals, file = value.partition("=")
        if not equals or not name.strip() or not file.strip():
            raise PlugError(f"--exercise {value!r}: write NAME=FILE, e.g. --exercise deposit-guard=guard.py")
        name = name.strip()
        if name not in EXERCISES:
            raise PlugError(
                f"--exercise {value!r}: no exercise {name!r}; the server can plug in: {', '.join(EXERCISES)}"
            )
        path = Path(file.strip()).expanduser()
        if not path.is_file():
            raise PlugError(f"--exercise {value!r}: no file {str(path)!r}")
        if name in found:
            raise PlugError(f"--exercise {name}: given twice")
        found[name] = path
    return found


def chosen(values: list[str], settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with each plugged part's setting `exercise`, unless the flags chose it otherwise."""
    settings = dict(settings)
    for name in parse(values):
        settings.setdefault(EXERCISES[name].setting, EXERCISE)
    return settings


def plug_in(config: Config, values: list[str]) -> Plugged | None:
    """The trainee's files loaded for a server of `config` (None when none is given); `PlugError` (exit 2) says
    why one cannot be, or why `config` chooses `exercise` for a part with nothing plugged in."""
    if values and not admin_auth.is_loopback(config.host):
        raise PlugError(
            f"--exercise runs a trainee's code, which only a server bound to loopback may run; --host "
            f"{config.host} is not loopback (use 127.0.0.1, ::1 or localhost)"
        )
    if values and config.store != "memory":
        raise PlugError("--exercise plugs a trainee's code into the memory store only (one process)")
    plugged = Plugged(parse(values))
    try:
        plugged.check(config)
    except ValueError as error:
        raise PlugError(str(error)) from None
    return plugged or None


def user_processes(uid: int) -> int:
    """Tasks (processes and threads) of `uid` now, as `RLIMIT_NPROC` counts them."""
    count = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue  # gone meanwhile, or not ours to read
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("Uid", "").split()[:1] == [str(uid)]:
            count += int(fields.get("Threads", "1").strip() or 1)
    return count


def limit_resources(config: Config) -> dict[str, int]:
    """Set this process's limits (inherited by the worker it forks); returns what it set, by name."""
    chosen = {"RLIMIT_AS": ADDRESS_SPACE_BYTES}
    if Path("/proc").is_dir():
        chosen["RLIMIT_NPROC"] = user_processes(os.getuid()) + config.workers * (config.threads + 16) + PROCESS_MARGIN
    for name, value in chosen.items():
        limit = getattr(resource, name)
        _soft, hard = resource.getrlimit(limit)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(limit, (value, value if hard == resource.RLIM_INFINITY else hard))
        chosen[name] = value
    return chosen
