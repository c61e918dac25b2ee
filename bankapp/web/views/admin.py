"""Settings at runtime and reset."""

from flask import request
from flask_openapi3 import APIBlueprint, Tag

from ..schemas import ConfigOut, ConfigPatch, Problem, ResetOut
from . import lab

bp = APIBlueprint("admin", __name__, abp_tags=[Tag(name="admin", description="settings and reset")])


#: Documents the body; `ConfigHolder.patch` validates it, naming the setting (the body is read by `body`).
PATCH_BODY = {
    "requestBody": {"required": True, "content": {"application/json": {"schema": ConfigPatch.model_json_schema()}}}
}


@bp.get("/admin/config", responses={200: ConfigOut})
def get_config():
    """The settings in force."""
    return lab().config().public()


@bp.patch("/admin/config", responses={200: ConfigOut, 422: Problem}, openapi_extensions=PATCH_BODY)
def patch_config():
    """Change settings live; requests that start afterwards use them."""
    return lab().settings.patch(request.get_json()).public()


@bp.post("/admin/reset", responses={200: ResetOut})
def reset():
    """Restore balances (and stock) and zero every counter; settings stay."""
    lab().reset()
    return {"status": "reset", "settings": lab().config().public()}
