"""A trainee's code plugged in place of the lab's own (`bankapp serve --exercise NAME=FILE`, docs/exercises-load.md).

- `loader`: the exercises the server can plug in (`EXERCISES`), and a
  trainee's file loaded and checked against its interface (`PlugError`)
- `parts`: `Plugged`, what the lab is handed: a guard per account, the
  checkout's admission or a transfer's lock order, each the trainee's, each
  call's failure a `TraineeCodeFailed` naming the file and line
"""

from .loader import EXERCISES, Exercise, PlugError, load
from .parts import PROMPT_MS, CheckedSettings, Plugged, TraineeCodeFailed, TraineeGuard

__all__ = [
    "EXERCISES",
    "PROMPT_MS",
    "CheckedSettings",
    "Exercise",
    "PlugError",
    "Plugged",
    "TraineeCodeFailed",
    "TraineeGuard",
    "load",
]
