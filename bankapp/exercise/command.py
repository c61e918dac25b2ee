"""`bankapp exercise list | show NAME [--starter PATH] [--hint] | check NAME FILE [--json] | check LEVEL --schedule S`.

`check` is a list of stages (`STAGES`), each a function of the exercise
and the file that returns its JSON with `passed`: today the schedules
stage (every schedule, in a sandboxed child process); a stage added to the
list (an HTTP load, a speed comparison) runs after the ones before it
passed, and the grade passes when every stage did. Exit 0 pass, 1 fail,
2 a file that cannot be loaded or a usage error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..lab.plugged.loader import PlugError
from ..server.processes import ProcessError
from ..settings import SettingsError, load
from .catalog import EXERCISES, Exercise
from .levels import LEVELS, LevelRefused, check_level
from .load import judge_under_load, model_for
from .room import RoomError, post_grade
from .sandbox import judge_file

#: A stage: (exercise, file, options) -> its JSON, with at least `stage` and `passed`.
Stage = Callable[[Exercise, Path, argparse.Namespace], dict]


def schedules_stage(exercise: Exercise, path: Path, args: argparse.Namespace) -> dict:
    return judge_file(exercise.name, path, slow=getattr(args, "exhaustive", False))


def load_stage(exercise: Exercise, path: Path, args: argparse.Namespace) -> dict:
    """The trainee's code plugged into a real server under real HTTP load, then the model solution under the same
    load in the same run: the verdict's anomalies decide, `speed_ratio` is throughput over the model's."""
    if getattr(args, "no_load", False):
        return {"stage": "load", "passed": True, "skipped": "--no-load"}
    seconds = getattr(args, "load_seconds", 5.0)
    try:
        result = judge_under_load(exercise.name, path, model=model_for(exercise.name), seconds=seconds)
    except PlugError as error:
        return {"stage": "load", "passed": False, "unloadable": str(error)}
    except ProcessError as error:
        message = f"the server or Locust could not run: {error}"
        return {"stage": "load", "passed": False, "error": {"kind": "load", "line": None, "message": message}}
    seen = None
    if not result["passed"]:
        seen = {"kind": "under load", "line": None, "message": "; ".join(result["anomalies"])}
    return {"stage": "load", **result, "error": seen}


#: The stages in order: every schedule, then the HTTP load (posting to a room happens after, whatever the grade).
STAGES: list[Stage] = [schedules_stage, load_stage]


def add_parser(commands: Any) -> None:
    parser = commands.add_parser(
        "exercise",
        help="exercises: write the guard, the lab judges it by every schedule; and break-it levels",
        description="Exercises in the seed course's order: each a task, a starter file and a judge that tries "
        "every schedule of its scenarios with your code in place of the lab's. Break-it levels: you are the "
        "scheduler, your schedule must break the lab's given code. See docs/exercises.md.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="the exercises in order, and the break-it levels")
    show = actions.add_parser("show", help="an exercise's task (or a level's goal)")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--starter", type=Path, metavar="PATH", help="write the starter file there")
    show.add_argument("--force", action="store_true", help="with --starter: overwrite a file that exists")
    show.add_argument("--hint", action="store_true", help="show the hint too")
    check = actions.add_parser(
        "check",
        help="judge FILE for exercise NAME, or replay --schedule against level NAME",
        epilog="examples: bankapp exercise check deposit-guard my_guard.py; bankapp exercise check "
        'unguarded-deposit --schedule "a.read b.read a.write b.write"',
    )
    check.add_argument("name", metavar="NAME")
    check.add_argument("file", nargs="?", type=Path, metavar="FILE")
    check.add_argument("--schedule", help="a break-it level: the schedule that breaks it (bankapp interleave notation)")
    check.add_argument("--json", action="store_true", help="print JSON")
    check.add_argument("--exhaustive", action="store_true", help="also the larger scenarios (three threads)")
    check.add_argument("--no-load", action="store_true", help="judge by the schedules only, no HTTP load stage")
    check.add_argument(
        "--load-seconds", type=float, default=5.0, metavar="S", help="seconds of load for yours and the model's"
    )
    check.add_argument("--room", metavar="URL", help="post the grade (never the code) to this server's scoreboard")
    check.add_argument("--name", dest="team", metavar="TEAM", help="with --room: your team's name")
    check.add_argument("--token", metavar="T", help="with --room: your team's token (default $BANKAPP_TEAM_TOKEN)")


def run(args: argparse.Namespace) -> int:
    if args.action == "list":
        print("\n".join(list_lines()))
        return 0
    if args.action == "show":
        return show(args)
    if args.name in LEVELS:
        return check_a_level(args)
    exercise = EXERCISES.get(args.name)
    if exercise is None:
        return _usage(f"no exercise or level {args.name!r}; see: bankapp exercise list")
    if args.schedule is not None:
        return _usage(f"--schedule is for the break-it levels; {args.name} is an exercise: give its FILE")
    if args.file is None:
        return _usage(f"check {args.name} FILE: the file to judge is missing")
    if not args.file.is_file():
        return _usage(f"{args.file}: no such file")
    if (args.room is None) != (args.team is None):
        return _usage("--room URL and --name TEAM go together")
    if not 0 < args.load_seconds <= 600:
        return _usage(f"--load-seconds {args.load_seconds:g}: give more than 0 and at most 600")
    grade = check(exercise, args.file, args)
    if grade.get("unloadable"):
        print(f"bankapp exercise: {grade['unloadable']}", file=sys.stderr)
        return 2
    print(json.dumps(grade, indent=2) if args.json else "\n".join(grade_lines(exercise, grade)))
    if args.room is not None and not post_to_room(exercise, grade, args):
        return 2
    return 0 if grade["passed"] else 1


def post_to_room(exercise: Exercise, grade: dict, args: argparse.Namespace) -> bool:
    """The grade (exercise, pass or fail, schedules tried, speed ratio; never the code) to the room's scoreboard."""
    load_answer: dict = next((s for s in grade["stages"] if s["stage"] == "load"), {})
    body = {
        "exercise": exercise.name,
        "passed": grade["passed"],
        "schedules": grade["schedules"],
        "speed_ratio": load_answer.get("speed_ratio"),
    }
    token = args.token or os.environ.get("BANKAPP_TEAM_TOKEN") or None
    try:
        post_grade(args.room, args.team, body, token=token)
    except RoomError as error:
        print(f"bankapp exercise: the grade was not posted to {args.room}: {error}", file=sys.stderr)
        return False
    print(f"posted to {args.room}/scoreboard as team {args.team}", file=sys.stderr)
    return True


def check(exercise: Exercise, path: Path, args: argparse.Namespace) -> dict:
    """Every stage in turn while they pass; the grade: {exercise, passed, schedules, equivalent, complete,
    outcomes, counterexample, error, stages}."""
    stages: list[dict] = []
    for stage in STAGES:
        answer = stage(exercise, path, args)
        if "unloadable" in answer:
            return {"exercise": exercise.name, "passed": False, "unloadable": answer["unloadable"]}
        stages.append(answer)
        if not answer["passed"]:
            break
    first = stages[0]
    failed = next((s for s in stages if not s["passed"]), None)
    return {
        "exercise": exercise.name,
        "passed": failed is None,
        "schedules": first.get("schedules", 0),
        "equivalent": first.get("equivalent", 0),
        "complete": first.get("complete", False),
        "outcomes": first.get("outcomes", {}),
        "counterexample": failed.get("counterexample") if failed else None,
        "error": failed.get("error") if failed else None,
        "stages": stages,
    }


def _usage(message: str) -> int:
    print(f"bankapp exercise: {message}", file=sys.stderr)
    return 2


def list_lines() -> list[str]:
    lines = ["Exercises (write the code; bankapp exercise show NAME, then check NAME FILE):"]
    lines += [f"  {i}. {e.name:<20}{e.title}" for i, e in enumerate(EXERCISES.values(), 1)]
    lines += ["", 'Break-it levels (be the scheduler: bankapp exercise check LEVEL --schedule "a.read ..."):']
    lines += [f"  {i}. {level.name:<20}{level.goal}" for i, level in enumerate(LEVELS.values(), 1)]
    return lines


def show(args: argparse.Namespace) -> int:
    if args.name in LEVELS:
        level = LEVELS[args.name]
        print(f"{level.name}: {level.goal}")
        print(f"  the code: bankapp interleave {level.scenario} --guard {level.guard}; you win with {level.breaks}")
        print(f'  try: bankapp exercise check {level.name} --schedule "..."  (steps: a.read, b.write, a.acquire, ...)')
        return 0
    exercise = EXERCISES.get(args.name)
    if exercise is None:
        return _usage(f"no exercise or level {args.name!r}; see: bankapp exercise list")
    if args.starter is not None:
        if args.starter.exists() and not args.force:
            return _usage(f"{args.starter} exists; not overwritten (--force to overwrite it)")
        args.starter.write_text(exercise.starter)
        print(f"wrote {args.starter}: fill in the TODOs, then: bankapp exercise check {exercise.name} {args.starter}")
        return 0
    print(f"{exercise.name}: {exercise.title}\n")
    print(exercise.task + "\n")
    print("Correct means: " + exercise.correct)
    if args.hint:
        print("\nHint: " + exercise.hint)
    else:
        print(f"\n(a hint: bankapp exercise show {exercise.name} --hint; the starter: --starter PATH)")
    return 0


def grade_lines(exercise: Exercise, grade: dict) -> list[str]:
    verdict = "PASS" if grade["passed"] else "FAIL"
    complete = "every schedule" if grade["complete"] else "not every schedule (the search stopped early)"
    outcomes = ", ".join(f"{kind} {count}" for kind, count in grade["outcomes"].items())
    lines = [
        f"{exercise.name}: {verdict}",
        f"  schedules: {grade['schedules']} run, {grade['equivalent']} skipped as equivalent; {complete}",
    ]
    if outcomes:
        lines.append(f"  outcomes: {outcomes}")
    lines += load_lines(grade)
    error = grade["error"]
    if error:
        where = f" at line {error['line']}" if error.get("line") else ""
        lines.append(f"  {error['kind']}{where}: {error['message']}")
    example = grade["counterexample"]
    if example:
        lines += ["", f"The shortest failing schedule ({example['scenario']}: {example['outcome']}):"]
        lines.append(f"  {example['schedule']}")
        lines += [f"  {s['step']:<12}{s['does']}" for s in example["steps"]]
        lines += [f"  => {finding}" for finding in example["findings"] if finding]
    if not grade["passed"]:
        lines += ["", "Hint: " + exercise.hint]
    return lines


def load_lines(grade: dict) -> list[str]:
    """What the HTTP load stage saw, when it ran."""
    stage = next((s for s in grade["stages"] if s["stage"] == "load"), None)
    if stage is None:
        return []
    if stage.get("skipped"):
        return [f"  under load: not run ({stage['skipped']})"]
    if stage.get("throughput") is None:  # it could not run: its error says why
        return []
    speed = "" if stage["speed_ratio"] is None else f", {stage['speed_ratio']:g}x the model's speed"
    anomalies = "no anomaly" if not stage["anomalies"] else f"{len(stage['anomalies'])} anomalies"
    return [f"  under load: {stage['throughput']:g}/s for {stage['seconds']:g} s, {anomalies}{speed}"]


def check_a_level(args: argparse.Namespace) -> int:
    if args.file is not None:
        return _usage(f"{args.name} is a break-it level: give --schedule, not a file")
    if not args.schedule:
        return _usage(f'{args.name} is a break-it level: give the schedule that breaks it, --schedule "a.read ..."')
    try:
        result = check_level(load(), args.name, args.schedule)
    except (LevelRefused, SettingsError) as error:
        return _usage(f"{args.name}: {error}")
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "lines"}, indent=2))
    else:
        print("\n".join(result["lines"]))
        if result["won"]:
            print(f"\n{result['level']}: BROKEN: {result['outcome']}, as asked")
        else:
            print(f"\n{result['level']}: not broken: it ended {result['outcome']}, not {result['breaks']}")
    return 0 if result["won"] else 1
