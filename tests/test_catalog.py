"""Customers and products are added through domain commands with checks."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from orderdesk.catalog import add_customer, add_product
from orderdesk.errors import Refused
from orderdesk.store import Store


def test_product_with_a_carton_code(store: Store) -> None:
    add_product(
        store,
        sku="BX-1",
        name="包装箱",
        unit_price=300,
        barcodes=["6901234567892", "BX-1-CTN"],
        barcode_units={"BX-1-CTN": 24},
        hazard_note="",
        lead_time_days=3,
        user="admin",
    )
    with store.read() as session:
        rows = dict(session.exec(text("SELECT code, units FROM productbarcode")).all())
        args = json.loads(session.exec(text("SELECT args FROM outbox WHERE command='add_product'")).scalar())
    assert rows == {"06901234567892": 1, "BX-1-CTN": 24}
    assert args["barcode_units"] == {"BX-1-CTN": 24} and args["lead_time_days"] == 3 and "hazard_note" in args


@pytest.mark.parametrize(
    ("kwargs", "code"),
    [
        ({"barcodes": ["6901234567893"]}, "bad_barcode"),  # check digit should be 2
        ({"barcodes": ["X-1"], "barcode_units": {"X-2": 5}}, "bad_value"),
        ({"barcodes": ["X-1"], "barcode_units": {"X-1": 0}}, "bad_value"),
        ({"hazard": "spicy"}, "bad_value"),
        ({"unit_price": -1}, "bad_value"),
    ],
)
def test_bad_products_are_refused(store: Store, kwargs: dict, code: str) -> None:
    with pytest.raises(Refused) as err:
        add_product(store, sku="BAD", name="坏产品", user="admin", **kwargs)
    assert err.value.code == code
    with store.read() as session:
        assert session.exec(text("SELECT count(*) FROM product")).scalar() == 0


def test_customers_need_the_right_role_and_a_unique_code(store: Store) -> None:
    add_customer(store, code="K1", name="杭州东升机电有限公司", user="wang")
    with pytest.raises(Refused) as err:
        add_customer(store, code="K1", name="重复", user="wang")
    assert err.value.code == "duplicate_customer"
    with pytest.raises(Refused) as err:
        add_customer(store, code="K2", name="仓库不能建客户", user="liu")
    assert err.value.code == "forbidden"
