"""The advocate page through the API: portal_url, getAdvocatePortal, rotation, short-lived tokens."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from referflow.actions import portal
from referflow.storage.models import Advocate
from tests.conftest import make_program
from tests.helpers import link
from tests.portal.helpers import FRIENDS, enrol, path_of, portal_program, refer_friends


def test_create_link_and_get_advocate_return_the_same_portal_url(api, client):
    made = enrol(api)
    assert made["portal_url"].startswith("https://refer.example.test/p/")
    again = enrol(api)
    assert again["portal_url"] == made["portal_url"]
    got = api.get(f"/v1/advocates/{made['advocate_id']}").get_json()
    assert got["portal_url"] == made["portal_url"]
    by_external = api.get("/v1/advocates/by-external-id/cus_anna").get_json()
    assert by_external["portal_url"] == made["portal_url"]
    assert client.get(path_of(made["portal_url"])).status_code == 200


def test_only_a_keyed_hash_of_the_token_is_stored(api, app):
    made = enrol(api)
    token = made["portal_url"].rsplit("/", 1)[1]
    with app.extensions["referflow"].db.session() as session:
        row = session.get(Advocate, made["advocate_id"])
        stored = " ".join(str(getattr(row, c.key)) for c in Advocate.__table__.columns)
    assert token not in stored
    assert len(row.portal_token_hash) == 64 and row.portal_generation == 0


def test_an_advocate_enrolled_before_the_page_gets_a_hash_when_first_read(api, app, client):
    made = enrol(api)
    with app.extensions["referflow"].db.session() as session:
        session.get(Advocate, made["advocate_id"]).portal_token_hash = None
        session.commit()
    assert client.get(path_of(made["portal_url"])).status_code == 404  # no hash, no page
    got = api.get(f"/v1/advocates/{made['advocate_id']}").get_json()
    assert got["portal_url"] == made["portal_url"]
    assert client.get(path_of(made["portal_url"])).status_code == 200


def test_rotation_replaces_the_url_and_ends_the_old_one_and_every_short_lived_token(api, client):
    made = enrol(api)
    token = api.post(f"/v1/advocates/{made['advocate_id']}/portal/tokens").get_json()
    rotated = api.post(f"/v1/advocates/{made['advocate_id']}/portal/rotate")
    assert rotated.status_code == 200
    body = rotated.get_json()
    assert body["portal_url"] != made["portal_url"] and body["rotated_at"].endswith("Z")
    assert client.get(path_of(made["portal_url"])).status_code == 404
    assert client.get(path_of(token["url"])).status_code == 404
    assert client.get(path_of(body["portal_url"])).status_code == 200
    got = api.get(f"/v1/advocates/{made['advocate_id']}").get_json()
    assert got["portal_url"] == body["portal_url"]
    assert got["events"][-1]["action"] == "portal_rotated"


def test_a_short_lived_token_opens_the_page_for_an_hour(api, client):
    made = enrol(api)
    response = api.post(f"/v1/advocates/{made['advocate_id']}/portal/tokens")
    assert response.status_code == 201
    issued = response.get_json()
    expires = datetime.fromisoformat(issued["expires_at"].replace("Z", "+00:00"))
    assert timedelta(minutes=59) < expires - datetime.now(UTC) <= timedelta(hours=1)
    assert issued["url"] == f"https://refer.example.test/p/{issued['token']}"
    assert client.get(path_of(issued["url"]) + "?embed=1").status_code == 200


def test_an_expired_or_tampered_token_answers_404(api, app):
    made = enrol(api)
    with app.extensions["referflow"].db.session() as session:
        ctx = _ctx(session, app, api.program_id)
        advocate = session.get(Advocate, made["advocate_id"])
        old = portal.issue_token(ctx, advocate, datetime.now(UTC) - timedelta(hours=2))
        fresh = portal.issue_token(ctx, advocate)
    client = app.test_client()
    expired = client.get(f"/p/{old.token}")
    assert expired.status_code == 404 and "expired" in expired.get_data(as_text=True)
    payload, _, signature = fresh.token.rpartition(".")
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert client.get(f"/p/{forged}").status_code == 404
    assert client.get("/p/not.a.token").status_code == 404
    assert client.get("/p/" + "x" * 43).status_code == 404


def test_permanent_link_off_leaves_only_short_lived_tokens(client):
    api = portal_program(client, permanent_link=False)
    made = enrol(api)
    assert made["portal_url"] is None
    assert api.get(f"/v1/advocates/{made['advocate_id']}").get_json()["portal_url"] is None
    token = api.post(f"/v1/advocates/{made['advocate_id']}/portal/tokens").get_json()
    assert client.get(path_of(token["url"])).status_code == 200


def test_the_permanent_url_answers_404_once_the_program_turns_it_off(api, client):
    made = enrol(api)
    program = api.get("/v1/program").get_json()
    config = {**program["config"], "portal": {**program["config"]["portal"], "permanent_link": False}}
    assert api.put("/v1/program/config", {"config": config}).status_code == 200
    assert client.get(path_of(made["portal_url"])).status_code == 404


def test_get_advocate_portal_shows_friends_by_first_name_or_initial_only(client):
    api = portal_program(client)
    made = enrol(api)
    refer_friends(api, made["code"])
    response = api.get(f"/v1/advocates/{made['advocate_id']}/portal")
    assert response.status_code == 200  # and valid against advocate-portal.json (the tests check)
    body = response.get_json()
    assert sorted(r["friend"] for r in body["referrals"]) == ["J.", "L.", "M."]
    text = response.get_data(as_text=True)
    for friend_id, email in FRIENDS:
        assert friend_id not in text and email not in text
        assert email.split("@")[0] not in text
    assert body["first_name"] == "Anna" and "Schmidt" not in text
    assert body["counts"]["approved"] == 2 and body["rewards"]["earned"] == 5000
    assert body["tier"] == {"approved": 2, "current": "Silver", "perks": ["Free shipping"],
                            "next": "Gold", "next_at": 5, "remaining": 3, "progress": 0.0,
                            "reward": "€25.00", "next_reward": "€40.00", "next_perks": []}
    assert body["leaderboard"] == [{"rank": 1, "name": "Anna", "approved": 2, "you": True}]
    assert body["branding"]["name"] == "Acme Coffee"


def test_get_advocate_portal_share_links_carry_the_channel_and_the_language(api):
    made = enrol(api)
    body = api.get(f"/v1/advocates/{made['advocate_id']}/portal?lang=de").get_json()
    share = body["share"]
    assert body["language"] == "de" and "Gutschein" in share["message"]
    assert share["copy_url"] == f"{share['url']}?ch=copy" and share["qr_url"] == f"{share['url']}?ch=qr"
    channels = {link["channel"]: link for link in share["links"]}
    assert set(channels) == {"email", "sms", "whatsapp", "x", "linkedin", "facebook", "telegram"}
    for channel, item in channels.items():
        assert item["url"] == f"{share['url']}?ch={channel}"
    assert body["leaderboard"] is None and body["tier"] is None


def test_portal_operations_of_an_unknown_or_another_programs_advocate_are_404(api, client):
    mine = link(api)
    other = make_program(client, name="Other")
    assert other.get(f"/v1/advocates/{mine['advocate_id']}/portal").status_code == 404
    assert api.get("/v1/advocates/adv_nobody/portal").get_json()["code"] == "advocate_not_found"
    for verb in ("rotate", "tokens"):
        response = other.post(f"/v1/advocates/{mine['advocate_id']}/portal/{verb}")
        assert response.status_code == 404, verb


def test_a_read_only_key_reads_the_portal_but_cannot_rotate_or_mint_tokens(api, admin):
    made = enrol(api)
    key = admin.post(f"/v1/admin/programs/{api.program_id}/api-keys", {"scopes": ["read"]}).get_json()
    reader = type(api)(api.client, key["key"])
    assert reader.get(f"/v1/advocates/{made['advocate_id']}/portal").status_code == 200
    assert reader.post(f"/v1/advocates/{made['advocate_id']}/portal/rotate").status_code == 403
    assert reader.post(f"/v1/advocates/{made['advocate_id']}/portal/tokens").status_code == 403


def _ctx(session, app, program_id):
    from referflow.actions.common import ProgramContext
    from referflow.domain.program import ProgramConfig
    from referflow.storage.models import Program

    program = session.scalar(select(Program).where(Program.id == program_id))
    return ProgramContext(program, ProgramConfig.from_dict(program.config),
                          app.extensions["referflow"].settings.secret_key)


def test_an_erased_advocates_page_is_gone_and_their_friends_show_as_a_friend(client):
    api = portal_program(client)
    made = enrol(api)
    refer_friends(api, made["code"], approve=0)
    assert api.client.delete(f"/v1/people/{FRIENDS[0][0]}", headers=api.headers()).status_code == 200
    body = api.get(f"/v1/advocates/{made['advocate_id']}/portal").get_json()
    assert None in [r["friend"] for r in body["referrals"]]  # the erased friend: nothing known
    token = api.post(f"/v1/advocates/{made['advocate_id']}/portal/tokens").get_json()
    assert api.client.delete("/v1/people/cus_anna", headers=api.headers()).status_code == 200
    assert client.get(path_of(made["portal_url"])).status_code == 404
    assert client.get(path_of(token["url"])).status_code == 404
    assert api.get(f"/v1/advocates/{made['advocate_id']}").get_json()["portal_url"] is None
