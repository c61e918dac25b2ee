"""The shop: the catalogue and checkout, admitted under `checkout_guard`."""

from flask_openapi3 import Tag

from ..idempotency import idempotent
from ..schemas import CatalogOut, CheckoutIn, OrderOut, Problem
from . import lab
from .dispatch import Blueprint as APIBlueprint

bp = APIBlueprint("checkout", __name__, abp_tags=[Tag(name="checkout", description="catalogue and admission")])


@bp.get("/catalog", responses={200: CatalogOut})
def catalog():
    """Every SKU with its stock now and after a reset."""
    return {"items": lab().shop.catalog()}


@bp.post("/checkout", responses={200: OrderOut, 404: Problem, 409: Problem, 422: Problem, 503: Problem})
@idempotent
def checkout(body: CheckoutIn):
    """Admit under `checkout_guard`, reserve stock, pay: 409 when stock is short, 503 when not admitted."""
    return lab().shop.checkout(body.sku, body.quantity).as_dict()
