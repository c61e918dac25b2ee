"""Explore every interleaving: a deterministic scheduler under the lab's real code, with partial-order reduction.

`explore(config, "deposit", "unsafe")` runs every schedule of a scenario of
`bankapp interleave` (one of each class of equivalent ones), judges each in
the lab's words and returns the counts and the shortest failing schedule,
which replays with `bankapp interleave`. See docs/explore.md.

- `engine`: one schedule, run for real, one thread at a time;
- `dpor`: the search, with dynamic partial-order reduction and sleep sets;
- `clock`: virtual time and seeded chance for the explored threads;
- `primitives`: `threading`'s primitives under the scheduler, for any code;
- `explorer`: the lab's scenarios, judged;
- `report`: the result in words;
- `database`, `db`: the postgres store explored and replayed statement by statement.
"""

from .explorer import OUTCOMES, InvalidExplore, classify, explore, replay_anywhere, replayed_outcome

__all__ = ["OUTCOMES", "InvalidExplore", "classify", "explore", "replay_anywhere", "replayed_outcome"]
