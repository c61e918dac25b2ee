"""A room over a store every worker shares, with a register as the postgres store keeps it (here a dict): a
worker learns the teams another made, their tokens open them, a team made meanwhile is a 409, and a freeze
written by one worker is read by the others within a second."""

from __future__ import annotations

import time

import pytest

from bankapp.lab import Lab
from bankapp.rooms import Room, RoomRefused
from bankapp.rooms.room import FROZEN_READ_S
from bankapp.settings import load


class Register:
    """The database's register and room state, shared by the "workers" (rooms) of one test."""

    def __init__(self) -> None:
        self.teams: dict[str, bytes | None] = {}
        self.frozen = False

    def worker(self) -> Room:
        config = load({})

        def make_lab(name: str, token_digest: bytes | None) -> Lab:
            if token_digest is not None:
                if name in self.teams:
                    raise ValueError(f"team {name!r} already exists")  # as TeamExists is
                self.teams[name] = token_digest
            return Lab(config)

        room = Room(Lab(config), make_lab, 30, registered=lambda: dict(self.teams))
        room.shared_freeze = (lambda: self.frozen, lambda frozen: setattr(self, "frozen", frozen))
        return room


def test_a_worker_learns_the_teams_another_made_and_their_tokens():
    register = Register()
    one, other = register.worker(), register.worker()
    (made,) = one.create(["red"])
    assert other.alone  # it has met no team yet
    red = other.get("red")
    assert red is not None and red.opens(made["token"]) and not red.opens("guess")
    assert [team.name for team in other.teams()] == ["default", "red"]
    assert other.get("nobody") is None and other.get("Bad Name") is None


def test_a_team_another_worker_made_is_a_409_and_nothing_else_is_made():
    register = Register()
    one, other = register.worker(), register.worker()
    one.create(["red"])
    with pytest.raises(RoomRefused) as refused:
        other.create(["blue", "red"])
    assert (refused.value.status, refused.value.slug) == (409, "team-exists")
    assert list(register.teams) == ["red"]


def test_a_freeze_reaches_the_other_workers_within_a_second():
    register = Register()
    one, other = register.worker(), register.worker()
    assert not other.frozen
    one.freeze_all(True)
    assert one.frozen
    time.sleep(FROZEN_READ_S + 0.05)
    assert other.frozen


def test_a_team_whose_reset_gives_up_is_named_and_the_rest_of_the_room_moves():
    from bankapp.lab.admission import ResetBlocked

    register = Register()
    room = register.worker()
    room.create(["red", "blue"])
    red = room.get("red")
    assert red is not None

    def blocked() -> dict:
        raise ResetBlocked(
            10, [{"operation": "deposit", "thread": "t1", "running_ms": 10_000, "holds": [], "waits_for": []}]
        )

    red.lab.reset = blocked  # type: ignore[method-assign]  # a request of red's runs on past the reset's wait
    moved = room.move_to_lesson(4)
    assert list(moved["failed"]) == ["red"] and "deposit on thread t1" in moved["failed"]["red"]
    assert all(team.lab.config().deposit_guard == "lock" for team in room.teams())
    reset = room.reset_all()
    assert reset["teams"] == 2 and list(reset["failed"]) == ["red"]
