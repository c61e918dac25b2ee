"""One plain sentence per compare row, saying what its numbers show.

The sentence names the lesson of the row (a lost update, an admission
limit, a broken Coffman condition) with the row's own numbers, so a trainee
reading the table knows what to look at. Where writes erased others, it
quotes one erasure as the server named it (`/debug/races`). One function
per scenario; each takes a row as `rows.make_row` builds it.
"""

from __future__ import annotations


def deposit(row: dict) -> str:
    guard, acknowledged, lost = row["guard"], row["acknowledged"], row["lost_updates"]
    share = f" ({lost / acknowledged:.1%})" if acknowledged else ""
    if guard == "unsafe":
        return (
            f"No guard: {lost:,} of {acknowledged:,} acknowledged one-cent deposits{share} vanished, "
            "overwritten by concurrent read-modify-writes."
        )
    if lost:
        return (
            f"A semaphore of {guard[10:-1]} permits lets that many deposits interleave: {lost:,} lost{share}; "
            "a semaphore excludes only with 1 permit."
        )
    return f"A per-account {guard} lets one deposit at a time between read and write: none of {acknowledged:,} lost."


def checkout(row: dict) -> str:
    guard = row["guard"]
    if guard == "unsafe":
        return (
            f"No admission limit: {row['peak_in_flight']} checkouts in flight at once against a gateway built "
            f"for {row['gateway_capacity']}, p99 {row['p99_ms']:.0f} ms, and the flash sale oversold "
            f"{row['oversold']} units."
        )
    if guard in {"lock", "rlock"}:
        return (
            f"One global {guard}: at most {row['peak_in_flight']} checkout in flight; safe, but only "
            f"{row['completed_per_s']:.0f} checkouts/s completed, and {row['rejected_per_s']:,.0f}/s turned away "
            "because only max_waiting may queue for the lock."
        )
    return (
        f"The semaphore admitted at most {row['peak_in_flight']} of capacity {row['capacity']} at once: "
        f"{row['completed_per_s']:.0f} checkouts/s completed, {row['rejected_per_s']:,.0f}/s turned away with 503 "
        f"and Retry-After; oversold {row['oversold']}."
    )


def transfer(row: dict) -> str:
    guard = row["guard"]
    if guard == "unsafe":
        error = row.get("total_error", 0)
        return f"No locks: the bank's total is off by {error:+,} cents; money was created or destroyed."
    if guard == "naive":
        conserved = "conserved" if row.get("total_conserved") else "NOT conserved"
        return (
            f"Opposing transfers deadlocked {row['deadlocks']:,} times; each was detected and its victim rolled "
            f"back, so the total is {conserved}."
        )
    if guard == "ordered":
        return "Locks taken in account-id order: no circular wait, so no deadlock, and the total is conserved."
    if guard == "release-first":
        return (
            f"Never holding two locks means no deadlock, but {row['wrong_total_reads']:,} audits saw money in "
            "flight between the debit and the credit."
        )
    return (
        f"Giving up held locks and retrying ({row['retries']:,} retries) breaks no-preemption: "
        f"{row['deadlocks']} deadlocks."
    )


SENTENCES = {"deposit": deposit, "checkout": checkout, "transfer": transfer}


def explain(row: dict) -> str:
    """One plain sentence saying what the row shows, and an erasure of the row in words, if there was one."""
    said = SENTENCES[row["scenario"]](row)
    if row.get("race_example"):
        said += f" For example, {row['race_example']}"
    return said
