"""The names of the tally's counters, defined once for the users and the verdict.

A counter's key is `section/subject/field` (see `tally`): the users count
under these names and the verdict reads them back, and the verdict's JSON
shows them under `clients`. A typo on either side would be a counter that is
never read, or read as zero; a name used on both sides cannot drift.

Sections and their subjects: `deposit` and `batch` per account (a batch's
amounts count under `deposit` too), `checkout` per SKU, `transfer` and
`audit` under `all`, and `leg` (one side of a transfer, in cents) per
account.
"""

# sections
DEPOSIT = "deposit"
BATCH = "batch"
CHECKOUT = "checkout"
TRANSFER = "transfer"
LEG = "leg"  # one side of a transfer, per account, in cents
AUDIT = "audit"

#: The subject of counters that are not per account or SKU.
ALL = "all"

# every request: sent before it goes out, then ok or failed on a definite answer
SENT = "sent"
OK = "ok"
FAILED = "failed"

# deposits, in cents
SENT_AMOUNT = "sent_amount"
OK_AMOUNT = "ok_amount"
FAILED_AMOUNT = "failed_amount"
#: The amount field of each outcome.
AMOUNT_OF = {SENT: SENT_AMOUNT, OK: OK_AMOUNT, FAILED: FAILED_AMOUNT}

# deposits that time out and retry (`RetryingDepositUser`)
RETRIES = "retries"
KEYLESS_RETRIES = "keyless_retries"
KEYLESS_RETRY_AMOUNT = "keyless_retry_amount"
TIMEOUTS = "timeouts"
REPLAYED = "replayed"
RETRY_FIELDS = (RETRIES, KEYLESS_RETRIES, TIMEOUTS, REPLAYED)

# batch deposits
SELF_DEADLOCK = "self_deadlock"

# checkout, in orders and units
OK_QUANTITY = "ok_quantity"
OUT_OF_STOCK = "out_of_stock"
REJECTED = "rejected"
NEGATIVE_REMAINING = "negative_remaining"
CHECKOUT_FIELDS = (SENT, OK, OUT_OF_STOCK, REJECTED, FAILED, NEGATIVE_REMAINING)

# transfers
COMMITTED = "committed"
INSUFFICIENT = "insufficient"
DEADLOCKS = "deadlocks"
LOCK_TIMEOUTS = "lock_timeouts"
TRANSFER_FIELDS = (SENT, COMMITTED, INSUFFICIENT, DEADLOCKS, LOCK_TIMEOUTS, FAILED)

# transfer legs, in cents
IN_SENT, IN_OK, IN_FAILED = "in_sent", "in_ok", "in_failed"
OUT_SENT, OUT_OK, OUT_FAILED = "out_sent", "out_ok", "out_failed"
LEG_FIELDS = (IN_SENT, IN_OK, IN_FAILED, OUT_SENT, OUT_OK, OUT_FAILED)

# audits
READS = "reads"
WRONG_TOTAL = "wrong_total"
NEGATIVE = "negative"
AUDIT_FIELDS = (READS, WRONG_TOTAL, NEGATIVE)
