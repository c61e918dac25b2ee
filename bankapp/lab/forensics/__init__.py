"""Race forensics: which write erased which, named, and the cents each erasure took.

The ledger says how many cents a race lost. This says who lost them. Every
account carries a version that each write advances; each write records the
version and balance it read, the version it wrote over, and who wrote it
(request id, operation, thread, pid, when). A write over a newer version
than it read has erased the writes in between: the store walks the version
chain back and names them (`chain`). Over a run the cents named add up to
`lost_updates` exactly, under every guard and store; a guard that excludes
never lets a write read an old version, so it records none.

Modules: `context` (the request a write belongs to, and what each thread
last read), `chain` (writes, the walk, the memory store's history),
`recorder` (recent erasures and exact totals, for `/debug/races`),
`words` (an erasure in one sentence).
"""

from .chain import HISTORY, HISTORY_EACH, Erasure, History, Write, erasure, walk
from .context import CALLER, NOBODY, Caller, ReadsSeen, calling, thread_and_pid, who
from .recorder import RECENT, Races, described, totals_json
from .words import sentence

__all__ = [
    "CALLER",
    "HISTORY",
    "HISTORY_EACH",
    "NOBODY",
    "RECENT",
    "Caller",
    "Erasure",
    "History",
    "Races",
    "ReadsSeen",
    "Write",
    "calling",
    "described",
    "erasure",
    "sentence",
    "thread_and_pid",
    "totals_json",
    "walk",
    "who",
]
