"""Share links: createLink, the /r/<code> redirect, advocates."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from flask import Blueprint, current_app, redirect, request
from werkzeug.wrappers import Response as BaseResponse

from referflow.actions import experiments, links, offers, portal
from referflow.api import payloads
from referflow.api.operations import PUBLIC, Caller, db_session, limit_public, operation
from referflow.domain.urls import is_http_url
from referflow.errors import Conflict

bp = Blueprint("links", __name__)


@operation(bp, "createLink", "POST", "/v1/links", tag="advocates",
           summary="Enrol an advocate and return their code and share URL (idempotent)",
           request_schema="create-link.request", response="link", status=201, also=(200,),
           outcomes=True)
def create_link(caller: Caller, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    link = links.create_link(db_session(), caller.ctx, body, payloads.base_url())
    return {**payloads.link(link.advocate, link.code, link.created),
            "portal_url": portal.portal_url(db_session(), caller.ctx, link.advocate, payloads.base_url()),
            "variant": experiments.link_shown(link.variant),
            "friend_offer": offers.view(offers.offer_of(db_session(), link.code.code)),
            "outcome": "link_created" if link.created else "existing_link",
            "changed": link.created}, 201 if link.created else 200


@operation(bp, "getAdvocate", "GET", "/v1/advocates/<advocate_id>", tag="advocates",
           summary="Read an advocate with codes and counts", response="advocate")
def get_advocate(caller: Caller, body: None, advocate_id: str) -> dict[str, Any]:
    return _advocate(caller, links.get_advocate(db_session(), caller.ctx, advocate_id=advocate_id))


@operation(bp, "getAdvocateByExternalId", "GET", "/v1/advocates/by-external-id/<external_id>",
           tag="advocates", summary="Find an advocate by your customer id", response="advocate")
def get_advocate_by_external_id(caller: Caller, body: None, external_id: str) -> dict[str, Any]:
    return _advocate(caller, links.get_advocate(db_session(), caller.ctx, external_id=external_id))


def _advocate(caller: Caller, advocate: Any) -> dict[str, Any]:
    return advocate_view(caller, advocate)


def advocate_view(caller: Caller, advocate: Any, codes: list[Any] | None = None,
                  stats: dict[str, int] | None = None, events: list[Any] | None = None,
                  friend_offers: dict[str, Any] | None = None) -> dict[str, Any]:
    """The advocate payload (getAdvocate, listAdvocates items, setAdvocateTier): one shape.

    What is not given is read here; a list passes all of it (actions/lists.advocate_details)."""
    session = db_session()
    codes = links.advocate_codes(session, advocate) if codes is None else codes
    return {**payloads.advocate(
                advocate, codes,
                links.advocate_stats(session, advocate) if stats is None else stats,
                links.advocate_events(session, advocate) if events is None else events,
                offers.views_of(session, [c.code for c in codes]) if friend_offers is None
                else friend_offers),
            "portal_url": portal.portal_url(session, caller.ctx, advocate, payloads.base_url())}


@operation(bp, "followLink", "GET", "/r/<code>", auth=PUBLIC, tag="advocates", response=None,
           status=302, query=("ch",),
           summary="The share URL: record a click and redirect to the landing page")
def follow_link(caller: Caller, body: None, code: str) -> BaseResponse:
    limit_public("public")
    secret = current_app.extensions["referflow"].settings.secret_key
    click, landing = links.record_click(db_session(), secret, code, request.args.get("ch"),
                                        request.remote_addr,
                                        request.headers.get("User-Agent"))
    if not is_http_url(landing):  # a config saved before URLs were checked: say so, never a 500
        raise Conflict("this program's landing_url is not a valid http(s) URL; fix it with "
                       "updateProgramConfig", code="landing_url_invalid")
    target = landing if click is None else _with_params(landing, {"ref": click.code, "click_id": click.id})
    return redirect(target, 302)


def _with_params(url: str, extra: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in extra]
    return urlunsplit(parts._replace(query=urlencode(query + list(extra.items()))))
