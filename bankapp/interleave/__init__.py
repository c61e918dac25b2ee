"""Replay an interleaving: real threads, paused at each step, released in the order of a schedule.

`replay(config, "deposit", "unsafe", "a.read b.read a.write b.write")`
runs two real deposits in a scratch lab of their own, one step at a time,
and returns what each step saw and the end state; `render` makes the lines
`bankapp interleave` prints. The web route (`POST /admin/interleave`) and
the command both call these; this package knows nothing of HTTP.

- `schedule`: steps, and schedules checked against them;
- `stepping`: the lab's store and locks, each call announced;
- `actors`: the threads and the locks they wait on, as the stepper sees them;
- `stepper`: the threads' pauses, and the order they go in;
- `scenarios`: what the threads do;
- `replay`: one replay, from settings to result;
- `render`: the result in words.
"""

from .render import render
from .replay import InvalidReplay, ReplayBusy, replay
from .scenarios import SCENARIOS
from .schedule import InvalidSchedule
from .stepper import ReplayError

__all__ = ["SCENARIOS", "InvalidReplay", "InvalidSchedule", "ReplayBusy", "ReplayError", "render", "replay"]
