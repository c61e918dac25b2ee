"""The lab guide is run as written, and says what the program prints.

`docs/lab-guide.md` is a script as much as a text. The tests below run
every command block in order against real servers, as a trainee would in
two terminals, and check that each output the guide quotes has the shape of
what came out. So the guide cannot drift from the program. How to write a
lesson so that it is tested (`tests/guide/guide.py` and `tests/guide/guide_run.py` implement this):

Fenced blocks, by info string:

- ```` ```sh ````: commands the trainee types in their terminal, from the
  repository root. All `sh` blocks run in one bash, in order, so a variable
  set in one (`U`, `H`) is there in the next; stderr shows with stdout.
  `.venv/bin/` means the environment the tests run in. Every `sh` block is
  followed by the `output` block it prints; one that prints nothing has
  none (and must print nothing).
- ```` ```sh server ````: one command that starts a server and keeps it
  running, in a terminal of its own. The test starts it in the background
  in a process group of its own and waits until `/healthz` answers. It
  binds 8000 unless it says `--port N`; the test gives it a free port
  instead and rewrites `127.0.0.1:N` in every later command. A second
  server must name another port (8001, ...) than the one still running.
  An `output` block after it is what it printed once ready.
- ```` ```output ctrl-c ````: the trainee presses Ctrl-C in the terminal of
  the server started last and still running; the test sends SIGINT to its
  process group (master and worker, as a terminal does), waits for it to
  exit (15 s at most) and matches what it printed from then on.
- ```` ```sh install ````: set-up the test does not run (its environment
  is installed already).
- ```` ```python ````: code to read, not run.
- Any other fence is refused, so an output block cannot go unchecked by
  mistake.

Matching an `output` block (prose may stand between it and its command):

- lines are compared one by one, trailing blanks and blank lines at either
  end ignored;
- `...` on a line of its own stands for any number of lines (none
  included), and inside a line for any text: that is how a long JSON or a
  long log is trimmed, visibly;
- every number stands for any number: pids, ports, thread names, idents,
  times, counts all vary from run to run;
- except the numbers listed in the info string: ```` ```output fixed=0,200 ````
  means that wherever the quoted text has a 0 or a 200, the output must
  have exactly that (a status code, `lost 0` under a lock);
- a run of spaces matches any run of spaces, so columns may widen.

So quote what a run printed, trim with `...` what is long or varies in
shape, and pin with `fixed=` the numbers that are the lesson. An output
that is random in shape (two background requests answering in either
order) is a command to fix: `wait` between them, or sort.

PostgreSQL (lessons 13 to 16): the guide's database is `bankapp` on
127.0.0.1:5432, created once in an `sh install` block (`createdb`). The
test creates a database of its own instead (`tests/pg.py`, so
`BANKAPP_TEST_DATABASE_URL` says where) and rewrites every
`postgresql://...@127.0.0.1:5432/bankapp` in a command or a server to it,
and drops it at the end; without a PostgreSQL the test skips (fails under
`CI=true`), as the other PostgreSQL tests do.

Lessons: each `## N. Title` section is lesson N, and its title is
`bankapp.cli.lessons.LESSONS[N]`'s. A lesson that uses a server runs
`.venv/bin/bankapp lesson N --url $U` before anything else that uses it
(the first line of its commands that names `$U`), which sets exactly the
settings it needs; lessons 13 to 16, which start a PostgreSQL fleet of
their own, do the same with its URL, `$P`. A lesson may rely on nothing
else an earlier lesson did, and a server it starts it also stops (Ctrl-C).
`test_a_lesson_works_alone` runs a lesson right after "Before you start" on
a fresh server.

To see what each block prints now (while writing a lesson, say)::

    .venv/bin/python -m tests.test_lab_guide 3 8     # lessons 3 and 8, after "Before you start"
    .venv/bin/python -m tests.test_lab_guide         # the whole guide
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from pathlib import Path

import pytest

from bankapp.cli.lessons import LESSONS

from . import guide, guide_run
from .guide import GuideError, Section, matches, parse

#: The URL of the server a lesson works on: `U`, the one of "Before you start"; `P`, the PostgreSQL fleet of 13 to 16.
SERVER_URL = re.compile(r"\$\{?(U|P)\b")
#: Every lesson runs alone, each on a fresh server (the long ones under `slow`); the whole guide in order is `slow`.
#: Under xdist each is a group of its own, so they spread over the workers, but lessons 13 to 16 start a
#: PostgreSQL fleet of 4 workers x 16 threads (a pool each) and share one group: one fleet at a time.
FLEET_LESSONS = range(13, 17)
#: Lessons whose run alone takes over 7 s on the 2-core machine (timed runs, load, a fleet): they run alone under
#: `slow` (the slow step also runs the whole guide in order, every lesson of it).
LONG_LESSONS = {3, 4, 7, 8, 9, 12, 13, 14, 15, 16, 17, 18}
ALONE = [
    pytest.param(
        number,
        marks=[
            pytest.mark.xdist_group("postgres-fleet" if number in FLEET_LESSONS else f"lesson-{number}"),
            *([pytest.mark.slow] if number in LONG_LESSONS else []),
        ],
    )
    for number in sorted(LESSONS)
]


def test_every_fenced_block_is_of_a_known_kind_and_every_output_has_its_command():
    sections = guide.guide_sections()
    assert [section.number for section in sections if section.number] == list(range(1, len(LESSONS) + 1))


@pytest.mark.parametrize("number", sorted(LESSONS))
def test_each_lesson_starts_from_its_known_state(number):
    """Its title is the lesson's; if it uses the server, `bankapp lesson N` comes first."""
    section = guide.lesson(number)
    assert section.title == LESSONS[number].title
    on_server = [
        (line, found[1])
        for step in section.steps
        if step.action.kind == "command"
        for line in step.action.text.splitlines()
        if (found := SERVER_URL.search(line))
    ]
    assert bool(on_server) == LESSONS[number].server, "LESSONS says whether the lesson needs a server"
    if on_server:
        line, variable = on_server[0]
        assert line == f".venv/bin/bankapp lesson {number} --url ${variable}"


def test_a_lesson_stops_every_server_it_starts():
    for section in guide.guide_sections():
        if section.number is None:
            continue
        started = sum(step.action.kind == "server" for step in section.steps)
        stopped = sum(step.action.kind == "ctrl-c" for step in section.steps)
        assert started == stopped, f"lesson {section.number}"


def test_the_matcher_lets_numbers_vary_and_elides_with_dots():
    quoted = '{"pid":7243,...,"threads":[...]}\n  unsafe    lost   668 (83.5%)\n...\nexit 2'
    assert matches(quoted, '{"pid":12,"a":1,"threads":[1]}\n  unsafe lost 3 (0.4%)\nexit 7')
    assert matches(quoted, '{"pid":12,"x":0,"threads":[]}\n  unsafe  lost  -3 (1%)\nmore\nlines\nexit 2')
    assert not matches(quoted, '{"pid":12,"threads":[]}\n  lock  lost 3 (1%)\nexit 2')  # words are the shape
    assert not matches(quoted, '{"pid":12}\n  unsafe lost 3 (1%)\nexit 2')
    assert not matches("a\nb", "a\nb\nc") and matches("a\n...", "a\nb\nc") and matches("a\n...", "a")


def test_fixed_numbers_must_be_as_quoted():
    quoted = "  lock      lost     0 (0.0%)  in 1.5 s\nHTTP/1.1 200 OK"
    assert matches(quoted, "  lock lost 0 (0.0%)  in 9.9 s\nHTTP/1.1 200 OK", frozenset({"0", "0.0", "200"}))
    assert not matches(quoted, "  lock lost 10 (1.2%)  in 1.5 s\nHTTP/1.1 200 OK", frozenset({"0", "0.0"}))
    assert not matches(quoted, "  lock lost 0 (0.0%)  in 1.5 s\nHTTP/1.1 503 OK", frozenset({"200"}))


def test_the_convention_is_enforced():
    with pytest.raises(GuideError, match="needs an info string"):
        parse("## 1. A\n```\nls\n```\n")
    with pytest.raises(GuideError, match="no command block before it"):
        parse("## 1. A\n```output\nhello\n```\n")
    with pytest.raises(GuideError, match="unknown info string"):
        parse("## 1. A\n```bash\nls\n```\n")
    sections = parse("## 1. A\n```sh\necho hi\n```\nText.\n```output fixed=0\nhi\n```\n```output ctrl-c\nbye\n```\n")
    (step, stop) = sections[0].steps
    assert (step.action.text, step.output.text, step.output.fixed) == ("echo hi", "hi", frozenset({"0"}))
    assert stop.action.kind == "ctrl-c"


def check(outcomes) -> None:
    """Fail with every step that did not print what the guide quotes, in full."""
    failed = [outcome.report() for outcome in outcomes if not outcome.ok]
    if failed:
        pytest.fail("\n\n".join(failed), pytrace=False)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_whole_guide_runs_in_order_and_prints_what_it_quotes(tmp_path):
    check(guide_run.run_sections(guide.guide_sections(), tmp_path))


@pytest.mark.e2e
@pytest.mark.parametrize("number", ALONE)
def test_a_lesson_works_alone(number, tmp_path):
    """Right after "Before you start", on a fresh server: nothing from another lesson."""
    check(guide_run.run_sections([*guide.setup_sections(), guide.lesson(number)], tmp_path))


def show(outcome) -> None:
    mark = "ok" if outcome.ok else "DIFFERS"
    print(f"\n=== line {outcome.step.action.line} ({outcome.section.title}): {mark}")
    print(outcome.step.action.text if outcome.step.action.kind != "ctrl-c" else "(Ctrl-C)")
    print("--- printed")
    print(outcome.actual.rstrip("\n"))
    sys.stdout.flush()


def main(numbers: list[int]) -> int:
    sections: list[Section] = guide.guide_sections()
    if numbers:
        sections = [*guide.setup_sections(), *(guide.lesson(number) for number in numbers)]
    began = time.monotonic()
    with tempfile.TemporaryDirectory() as workdir:
        outcomes = guide_run.run_sections(sections, Path(workdir), show=show)
    print(f"\n{sum(o.ok for o in outcomes)} of {len(outcomes)} steps as quoted, in {time.monotonic() - began:.0f} s")
    return 0 if all(outcome.ok for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main([int(argument) for argument in sys.argv[1:]]))
