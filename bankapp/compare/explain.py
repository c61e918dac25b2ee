"""One plain sentence per compare row, saying what its numbers show.

The sentence names the lesson of the row (a lost update, an admission
limit, a broken Coffman condition) with the row's own numbers, so a trainee
reading the table knows what to look at. Every claim is read from the row:
a guard expected to be safe that lost money is said to have lost it, and a
policy expected to deadlock that did not is said not to have. Where writes
erased others, it quotes one erasure as the server named it
(`/debug/races`). One function per scenario; each takes a row as
`rows.make_row` builds it.
"""

from __future__ import annotations


def _share(part: int, whole: int) -> str:
    return f" ({part / whole:.1%})" if whole else ""


def _permits(row: dict) -> int:
    """The semaphore's permits, as the row's settings say (1 when unset, the setting's default)."""
    return int((row.get("settings") or {}).get("deposit_permits") or 1)


def deposit(row: dict) -> str:
    guard, acknowledged, lost = row["guard"], row["acknowledged"], row["lost_updates"]
    share = _share(lost, acknowledged)
    if guard == "unsafe":
        if not lost:
            return f"No guard, yet none of {acknowledged:,} acknowledged deposits was lost: the race did not strike."
        return (
            f"No guard: {lost:,} of {acknowledged:,} acknowledged one-cent deposits{share} vanished, "
            "overwritten by concurrent read-modify-writes."
        )
    is_semaphore = (row.get("settings") or {}).get("deposit_guard", guard) == "semaphore" or guard.startswith(
        "semaphore"
    )
    permits = _permits(row) if is_semaphore else 1
    if is_semaphore and permits > 1:
        if lost:
            return (
                f"A semaphore of {permits} permits lets that many deposits interleave: {lost:,} lost{share}; "
                "a semaphore excludes only with 1 permit."
            )
        return (
            f"A semaphore of {permits} permits lets that many deposits interleave, though none of "
            f"{acknowledged:,} was lost in this run: that is luck, not exclusion."
        )
    name = "semaphore(1)" if is_semaphore else guard
    if lost:
        return f"A per-account {name} should let one deposit at a time in, yet {lost:,} of {acknowledged:,} were lost."
    return f"A per-account {name} lets one deposit at a time between read and write: none of {acknowledged:,} lost."


def checkout(row: dict) -> str:
    guard = row["guard"]
    oversold = f"the flash sale oversold {row['oversold']} units" if row["oversold"] else "nothing was oversold"
    if guard == "unsafe":
        return (
            f"No admission limit: {row['peak_in_flight']} checkouts in flight at once against a gateway built "
            f"for {row['gateway_capacity']}, p99 {row['p99_ms']:.0f} ms, and {oversold}."
        )
    if guard in {"lock", "rlock"}:
        safe = "safe, but" if not row["oversold"] else f"yet {oversold}, and"
        return (
            f"One global {guard}: at most {row['peak_in_flight']} checkout in flight; {safe} "
            f"only {row['completed_per_s']:.0f} checkouts/s completed, and {row['rejected_per_s']:,.0f}/s turned "
            "away because only max_waiting may queue for the lock."
        )
    peak, capacity = row["peak_in_flight"], row["capacity"]
    within = "at most" if capacity is None or peak <= capacity else "OVER its limit:"
    return (
        f"The {guard} admitted {within} {peak} of capacity {capacity} at once: "
        f"{row['completed_per_s']:.0f} checkouts/s completed, {row['rejected_per_s']:,.0f}/s turned away with 503 "
        f"and Retry-After; oversold {row['oversold']}."
    )


def _total(row: dict) -> str:
    """What the audit said of the bank's total, in words."""
    if row.get("total_conserved"):
        return "the total is conserved"
    if row.get("total_conserved") is None:
        return "the total was not audited"
    return f"the total is off by {row.get('total_error', 0):+,} cents"


def transfer(row: dict) -> str:
    guard, deadlocks, total = row["guard"], row["deadlocks"], _total(row)
    if guard == "unsafe":
        if row.get("total_conserved"):
            return "No locks, yet the bank's total is conserved in this run: the race did not strike."
        return f"No locks: {total}; money was created or destroyed."
    if guard == "naive":
        if not deadlocks:
            return f"Opposing transfers could deadlock, but none did in this run; {total}."
        return (
            f"Opposing transfers deadlocked {deadlocks:,} times; each was detected and its victim rolled back, "
            f"so {total}."
        )
    if guard == "ordered":
        return f"Locks taken in account-id order break circular wait: {deadlocks:,} deadlocks, and {total}."
    if guard == "release-first":
        seen = row["wrong_total_reads"]
        if not seen:
            return (
                f"Never holding two locks means no deadlock ({deadlocks:,}); no audit caught money in flight; {total}."
            )
        return (
            f"Never holding two locks means no deadlock ({deadlocks:,}), but {seen:,} audits saw money in "
            "flight between the debit and the credit."
        )
    return (
        f"Giving up held locks and retrying ({row['retries']:,} retries) breaks no-preemption: "
        f"{deadlocks:,} deadlocks, and {total}."
    )


SENTENCES = {"deposit": deposit, "checkout": checkout, "transfer": transfer}


def explain(row: dict) -> str:
    """One plain sentence saying what the row shows, and an erasure of the row in words, if there was one."""
    said = SENTENCES[row["scenario"]](row)
    if row.get("race_example"):
        said += f" For example, {row['race_example']}"
    return said
