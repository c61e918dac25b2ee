"""Per-account locks that know who holds them and who waits: a live wait-for graph.

A deadlock is a cycle of waiting: thread A holds `acc-00` and waits for
`acc-01`, which thread B holds while it waits for `acc-00`. Neither can
move, and a plain `threading.Lock` will never tell you so. Here every
account lock is wrapped once, in `AccountLock`, and reports to one
`LockTable`:

- which thread holds each lock (an edge lock -> thread),
- which lock each waiting thread waits for (an edge thread -> lock).

Together they are the wait-for graph. A thread waits for at most one lock
and a `Lock` has at most one holder, so from any waiter there is exactly one
path to follow: waiter -> lock it wants -> that lock's holder -> the lock
*that* thread wants -> ... The path either ends (someone is running and will
release) or comes back to a thread already seen: a cycle, a deadlock.

Checking on every acquire would be wasted work, since almost every wait ends
by itself. Like PostgreSQL after `deadlock_timeout`, a waiter waits in slices
of `deadlock_check_ms`; only when a slice runs out does it look for a cycle
through itself. If it finds one it becomes the *victim*: it leaves the queue
(taking its edge out of the graph at once, so the other members of the cycle
do not also give up) and raises `DeadlockVictim`; the caller rolls back and
releases what it holds, and the others proceed. With `lock_timeout_ms`
`none` nobody may give up: the cycle is reported once (it shows in
`/debug/locks` and in the recent deadlocks) and the threads wait forever,
which is what a real deadlock looks like, until the operator breaks it
from outside (`break_deadlocks`: no preemption, broken).

Fairness. `threading.Lock` promises no order: a thread that releases and
at once acquires again usually wins over one that has waited a second, and
under load a patient waiter can lose that race until its timeout runs out:
starvation. These locks keep a queue, as PostgreSQL's lock manager does: a
waiter joins the end of its lock's queue (a `Wait`), `release()` hands the
lock to the first in the queue, and a newcomer never takes a lock someone
is queued for. A waiter that times out or gives up leaves the queue; one
handed the lock in the very instant its time runs out keeps it. Ownership
changes at the hand-over, under the table's lock, so the graph never shows
a lock free while its next holder is still waking up.

Modules: `table` (`AccountLock`, `LockTable`: holders and queues) and
`graph` (`Wait`, the cycle search, deadlock records).
"""

from ..guards import DeadlockVictim
from .graph import RECENT_DEADLOCKS, Wait
from .table import AccountLock, LockTable

__all__ = ["RECENT_DEADLOCKS", "AccountLock", "DeadlockVictim", "LockTable", "Wait"]
