"""Settings at runtime and reset."""

from flask_openapi3 import APIBlueprint, Tag

from ..problems import json_body
from ..schemas import Problem
from . import lab

bp = APIBlueprint("admin", __name__, abp_tags=[Tag(name="admin", description="settings and reset")])


@bp.get("/admin/config")
def get_config():
    """The settings in force."""
    return lab().config().public()


@bp.patch("/admin/config", responses={422: Problem})
def patch_config():
    """Change settings live; requests that start afterwards use them."""
    return lab().settings.patch(json_body()).public()


@bp.post("/admin/reset")
def reset():
    """Restore balances (and stock) and zero every counter; settings stay."""
    lab().reset()
    return {"status": "reset", "settings": lab().config().public()}
