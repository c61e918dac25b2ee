"""Where `gunicorn -k bankapp.worker.HardenedWorker` finds the worker: it lives in `bankapp.server.worker`."""

from .server.worker import HardenedWorker

__all__ = ["HardenedWorker"]
