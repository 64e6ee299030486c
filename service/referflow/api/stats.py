"""Program statistics: getProgramStats, as JSON or CSV."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from referflow.actions import stats
from referflow.api.operations import Caller, db_session, operation

bp = Blueprint("stats", __name__)


@operation(bp, "getProgramStats", "GET", "/v1/stats", tag="stats", response="program-stats",
           query=("from", "to", "interval", "group_by", "format"),
           summary="Program statistics per day, week or month (in the program's timezone): the "
                   "funnel, participation, revenue, reward cost and the review queue")
def get_program_stats(caller: Caller, body: None) -> dict[str, Any] | Response:
    query = stats.parse_query(caller.ctx, request.args)
    result = stats.program_stats(db_session(), caller.ctx, query)
    if query.format == "json":
        return result
    response = Response(stats.stats_csv(result), mimetype="text/csv")
    response.headers["Content-Disposition"] = (
        f"attachment; filename=stats-{caller.ctx.id}-{result['from']}-{result['to']}.csv")
    return response
