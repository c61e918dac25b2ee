"""The web service that exposes the lab over HTTP: the app factory, one
blueprint per concern, request and response models, problems, the OpenAPI
contract, `Idempotency-Key` and the admin token."""

from .app import create_app

__all__ = ["create_app"]
