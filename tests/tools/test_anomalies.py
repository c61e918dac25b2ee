"""Anomalies grouped by kind, on hand-made rows: first, worst and last in time order, counts that add up."""

from bankapp.compare.anomalies import group, markdown_lines, row_examples, run_groups


def row(scenario: str, guard: str, ok: bool = False, anomalies=(), **series) -> dict:
    return {"scenario": scenario, "guard": guard, "ok": ok, "anomalies": list(anomalies), "series": series}


def deposit(guard: str, lost: list[int]) -> dict:
    return row("deposit", guard, lost[-1] == 0, t=[float(i) for i in range(len(lost))], lost_cents=lost)


def transfer(guard: str, deadlocks, totals, wrong, expected=1000, ok=False) -> dict:
    t = [float(i) for i in range(len(deadlocks))]
    expecteds = [None if total is None else expected for total in totals]
    return row(
        "transfer",
        guard,
        ok,
        t=t,
        deadlocks=deadlocks,
        audited_total=totals,
        expected_total=expecteds,
        wrong_audits=wrong,
    )


def test_a_kind_names_its_first_worst_and_last_example_in_time_order():
    rows = [deposit("unsafe", [0, 5, 45, 50, 50, 60]), deposit("lock", [0, 0, 0]), deposit("semaphore(4)", [0, 40, 80])]
    groups = run_groups(rows)
    lost = groups["lost-update"]
    assert lost["count"] == 6  # seconds in which cents were lost: 4 in the first row, 2 in the third
    assert lost["total"] == 60 + 80  # every cent lost, as the rows end
    assert (lost["first"]["guard"], lost["first"]["t"], lost["first"]["figure"]) == ("unsafe", 1.0, 5)
    assert (lost["worst"]["guard"], lost["worst"]["t"], lost["worst"]["figure"]) == ("unsafe", 2.0, 40)
    assert (lost["last"]["guard"], lost["last"]["t"], lost["last"]["figure"]) == ("semaphore(4)", 2.0, 40)
    assert lost["worst"]["says"] == "deposit / unsafe at 2.0 s: 40 cents lost"
    assert lost["first"]["row"] == 0 and lost["last"]["row"] == 2  # the later row ran later, whatever its t
    assert list(groups) == ["lost-update"]  # the lock row lost nothing: no example of it anywhere


def test_the_worst_of_equals_is_the_earliest():
    groups = run_groups([deposit("unsafe", [0, 7, 14, 21])])
    assert groups["lost-update"]["worst"]["t"] == 1.0


def test_one_example_is_first_worst_and_last_at_once():
    groups = run_groups([deposit("unsafe", [0, 0, 1])])
    lost = groups["lost-update"]
    assert lost["count"] == 1 and lost["first"] == lost["worst"] == lost["last"]
    assert lost["first"]["says"] == "deposit / unsafe at 2.0 s: 1 cent lost"


def test_checkout_oversells_and_runs_over_capacity():
    checkout = row(
        "checkout",
        "unsafe",
        t=[0.0, 1.0, 2.0, 3.0],
        in_flight=[0, 24, 20, 0],
        capacity=[8, 8, 8, 8],
        oversold=[0, 0, 3, 4],
    )
    semaphore = row("checkout", "semaphore", True, t=[0.0, 1.0], in_flight=[0, 8], capacity=[8, 8], oversold=[0, 0])
    groups = run_groups([checkout, semaphore])
    assert set(groups) == {"oversold", "over-capacity"}  # 8 in flight of 8 is at capacity, not over it
    assert groups["oversold"]["total"] == 4 and groups["oversold"]["count"] == 2
    over = groups["over-capacity"]
    assert over["count"] == 2 and over["total"] is None  # in flight at two moments do not add up
    assert over["worst"]["figure"] == 24 and over["worst"]["says"].endswith("24 in flight against a capacity of 8")


def test_money_made_or_lost_only_if_the_total_is_still_wrong_at_rest():
    # release-first: wrong mid-run (money in flight), right at rest: wrong audits, no money created or destroyed
    release_first = transfer("release-first", [0, 0, 0, 0], [1000, 990, 1000, 1000], [0, 3, 5, 5])
    # unsafe: still wrong at the end: each wrong reading is money created or destroyed, by its sign
    unsafe = transfer("unsafe", [0, 0, 0, 0], [1000, 1004, 970, 985], [0, 2, 9, 9])
    naive = transfer("naive", [0, 4, 12, 12], [1000, None, 1000, 1000], [0, 0, 0, 0])  # one audit refused: None
    groups = run_groups([release_first, unsafe, naive])
    assert list(groups) == ["deadlock", "wrong-audit", "money-created", "money-destroyed"]
    assert groups["wrong-audit"]["total"] == 14 and groups["wrong-audit"]["count"] == 4
    assert groups["wrong-audit"]["worst"]["guard"] == "unsafe" and groups["wrong-audit"]["worst"]["figure"] == 7
    assert groups["money-created"]["count"] == 1 and groups["money-created"]["first"]["figure"] == 4
    destroyed = groups["money-destroyed"]
    assert destroyed["count"] == 2 and destroyed["worst"]["figure"] == -30 and destroyed["last"]["figure"] == -15
    assert destroyed["worst"]["says"] == "transfer / unsafe at 2.0 s: the audited total -30 cents off the expected"
    assert groups["deadlock"]["total"] == 12 and groups["deadlock"]["worst"]["t"] == 2.0


def test_a_failed_row_whose_series_shows_nothing_is_still_listed():
    failed = row("transfer", "backoff", False, ["2 negative balances"], t=[0.0, 4.0], deadlocks=[0, 0])
    failed["series"].update(audited_total=[5, 5], expected_total=[5, 5], wrong_audits=[0, 0])
    older = {"scenario": "deposit", "guard": "unsafe", "ok": False, "anomalies": ["lost 5"], "duration_s": 3}
    groups = run_groups([failed, older])  # the second has no series: a run from before they were recorded
    verdict = groups["verdict"]
    assert verdict["count"] == 2
    assert verdict["first"]["says"] == "transfer / backoff at 4.0 s: 2 negative balances"
    assert verdict["last"]["says"] == "deposit / unsafe at 3.0 s: lost 5"


def test_a_row_keeps_its_own_groups_under_its_place_in_the_run():
    examples = row_examples(deposit("unsafe", [0, 5, 9]), index=3)
    assert [(e["row"], e["t"], e["figure"]) for e in examples] == [(3, 1.0, 5), (3, 2.0, 4)]
    own = group(examples)
    assert own["lost-update"]["count"] == 2 and own["lost-update"]["last"]["row"] == 3


def test_no_anomaly_says_so():
    assert run_groups([deposit("lock", [0, 0, 0])]) == {}
    assert markdown_lines({})[2] == "None: every row kept its invariants."
