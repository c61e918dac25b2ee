"""Exercises: the trainee writes the guard, the lab judges it (docs/exercises.md)."""
