"""``./dev run`` prepares keys, schema and the demo resident, and can be repeated."""

from __future__ import annotations

from codeservice import create_app
from codeservice.demo import DEMO_RESIDENT, prepare


def test_the_demo_prepares_everything_and_is_safe_to_repeat(tmp_path):
    config = {
        "ENV": "development",
        "KEYS_DIR": str(tmp_path / "keys"),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.db'}",
    }
    first = prepare(create_app(config))
    again = prepare(create_app(config))
    assert "created the demo resident" in first
    assert "created the demo resident" not in again

    client = create_app(config).test_client()
    login = client.post(
        "/api/v1/session", json={"phone": DEMO_RESIDENT["phone"], "password": DEMO_RESIDENT["password"]}
    )
    assert login.status_code == 200
    assert login.get_json()["resident"] == {"name_masked": "张*明", "category": "senior", "id_type": "resident_id"}
    assert client.get("/api/v1/code").status_code == 200
