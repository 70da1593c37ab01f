"""Contract sections 5 and 9: a usage record's ``form``, uploaded (``POST /api/v1/usage``) and online.

An uploaded record without ``form`` is an ``online`` one; ``form`` is
``online``, ``device`` or ``paper``; anything else is refused with
``invalid_usage_record`` naming ``records[i].form``, never a 5xx.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import record, upload
from sqlalchemy import select

from codeservice import db
from codeservice.models import UsageRecord


def stored_forms(app: Any) -> dict[str, str]:
    with app.app_context():
        return dict(db.session().execute(select(UsageRecord.id, UsageRecord.form)).all())


def test_uploaded_records_keep_their_form_and_one_without_is_online(app: Any, client: Any, key: str) -> None:
    batch = [record(form="device"), record(form="paper", jti="AgICAgICAgI"), record(form="online"), record()]
    response = upload(client, key, batch)
    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"accepted": 4, "duplicates": 0}
    assert stored_forms(app) == {
        batch[0]["id"]: "device", batch[1]["id"]: "paper", batch[2]["id"]: "online", batch[3]["id"]: "online"
    }


@pytest.mark.parametrize(
    "form", ["tablet", "", "Device", None, 1, True, ["device"], {"form": "device"}, "paper\x00", "online "]
)
def test_attack_an_upload_with_a_form_of_another_kind_is_refused(app: Any, client: Any, key: str, form: Any) -> None:
    response = upload(client, key, [record(), record(form=form)])
    assert response.status_code == 400, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert (error["code"], error["field"]) == ("invalid_usage_record", "records[1].form")
    assert "online, device, paper" in error["message"]
    assert stored_forms(app) == {}  # one bad record refuses the whole batch


def test_attack_check_id_in_an_upload_is_refused(client: Any, key: str) -> None:
    response = upload(client, key, [record(form="paper", check_id={"n": "张*明", "i": "123X"})])
    assert response.status_code == 400
    assert response.get_json()["error"]["field"] == "records[0].check_id"


def test_the_verify_endpoint_stores_the_decisions_form(app: Any, client: Any, key: str) -> None:
    for token, form in (("RSD1:%%", "device"), ("RSP1:00", "paper"), ("a.b.c", "online")):
        response = client.post(
            "/api/v1/verify",
            json={"token": token, "scene": "transit", "context": {"station": "A", "direction": "in"}},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 200
        decision = response.get_json()
        assert (decision["code"], decision["form"], decision["check_id"]) == ("malformed", form, None)
    assert sorted(stored_forms(app).values()) == ["device", "online", "paper"]
