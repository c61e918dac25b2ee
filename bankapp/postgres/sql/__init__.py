"""Every statement the postgres store runs, each with the anomaly it allows or prevents.

SQL is part of the lesson, so it is all here, in the open: no ORM, every
parameter bound (`%s`), every transaction spelled out by the caller with
`with conn.transaction():`. Read it next to Hermitage's table of anomalies:

- a read in one statement and a write computed from it in another is a
  read-modify-write across two statements: between them another
  transaction can commit, and the write erases it (P4, the lost update),
  even inside a READ COMMITTED transaction;
- `SELECT ... FOR UPDATE` locks the row until the transaction ends: a
  second reader waits, and reads the committed result;
- `UPDATE ... SET balance = balance + %s` reads and writes in one
  statement, under the row lock the UPDATE takes anyway: nothing can get in
  between, and the application holds no lock at all;
- under SERIALIZABLE, PostgreSQL aborts one of two transactions whose
  reads and writes could not have happened one after the other (`40001`).

Counts ride along with the write they count (`Counts`): the balance and
its record change in one statement, so no snapshot ever sees one without
the other. Counters are relative (`n = n + 1`), so they are exact even
where the balance write they ride with is a lost update.

Every balance write carries its counts, a version that every write
advances, and its line in the writes log, in the statement itself
(`WRITE_BALANCE`, `ADD_TO_BALANCE`). This package holds statements only,
and no state: which version a write was computed from, and what an erasure
names, is the store's (`store.write_balance`, `store.record_erasure`).
"""

from __future__ import annotations

from .accounts import *  # noqa: F403  (every statement is read as `sql.NAME`)
from .fleet import *  # noqa: F403
from .shop import *  # noqa: F403
