"""What the server can say about itself: health, threads, counters, and who erased whom."""

import os
import threading

from flask import current_app
from flask_openapi3 import Tag

from ..history import history_of
from ..schemas import DebugRacesOut, HealthOut, Problem, RacesQuery, StatsOut, ThreadsOut
from . import lab
from .dispatch import Blueprint as APIBlueprint

bp = APIBlueprint(
    "introspection", __name__, abp_tags=[Tag(name="introspection", description="health, threads, counters, races")]
)


def describe_thread(thread: threading.Thread) -> dict:
    return {
        "name": thread.name,
        "ident": thread.ident,
        "native_id": thread.native_id,
        "daemon": thread.daemon,
        "alive": thread.is_alive(),
    }


@bp.get("/healthz", responses={200: HealthOut, 503: Problem})
def healthz():
    """Liveness: touches no guard, so it answers while every lock is held; 503 when the store is down."""
    return lab().health()


@bp.get("/threads", responses={200: ThreadsOut})
def threads():
    """What `threading.active_count()`, `enumerate()` and `current_thread()` say in this worker."""
    return {
        "pid": os.getpid(),
        "active_count": threading.active_count(),
        "current_thread": describe_thread(threading.current_thread()),
        "main_thread": describe_thread(threading.main_thread()),
        "threads": [describe_thread(t) for t in threading.enumerate()],
    }


@bp.get("/stats", responses={200: StatsOut})
def stats():
    """Every counter, exact whatever the guard, the settings in force, and which threads of
    this worker served requests in the last few seconds (`served_by`)."""
    counters = lab().stats()
    history_of(lab()).record(counters)  # the dashboard's history: a sample, if one is due
    return {**counters, "served_by": current_app.extensions["bankapp.metrics"].servers.report()}


@bp.get("/debug/races", responses={200: DebugRacesOut, 503: Problem})
def races(query: RacesQuery):
    """Who erased whom: the newest erasures (each in words), and totals that add up to `lost_updates`.

    Never waits on a guard: the erasures live under a small lock of their own (or in the database).
    """
    return lab().races(query.limit)
