"""Exercises: the trainee writes the guard, the lab judges it by every schedule (docs/exercises.md).

- `catalog`: the exercises in the course's order: task, interface, hint, starter; `models/` the lab's solutions;
- `scenarios`: what each exercise's threads do with the trainee's code, and how a schedule is judged;
- `tracing`: every line of the trainee's file a step, its objects' attributes what the steps touch;
- `judge`: the file loaded and checked, then explored (`explore_threads`), in the sandbox's child;
- `sandbox`: that child process, under CPU, memory, process and wall-time limits;
- `levels`: the break-it levels, replayed with `interleave`;
- `command`: `bankapp exercise list | show | check`, a check as a list of stages.
"""
