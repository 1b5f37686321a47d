"""``GET /v1/audits/{id}``: the verdict of a double-check AI audit.

The admin key sees every audit; a virtual key only the audits of its own requests
(another key's audit id answers 404, as an unknown one does).  With Redis counters any
replica answers for any audit; otherwise only the replica that ran it.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from tollhouse.control._auth import admin_or_key
from tollhouse.control._http import endpoint, json_response
from tollhouse.control._schema import ADMIN_OR_VIRTUAL_KEY, ANY_OBJECT, spec
from tollhouse.control.security import SecurityGateway
from tollhouse.errors import NotFound


def routes(gw: SecurityGateway) -> list[BaseRoute]:
    @endpoint
    @spec("the verdict of a double-check AI audit", response=ANY_OBJECT, auth=ADMIN_OR_VIRTUAL_KEY)
    async def get_audit(request: Request) -> Response:
        caller = admin_or_key(request, gw)
        verdict = await gw.security.auditor.find(str(request.path_params["id"]))
        if verdict is None or (caller is not None and verdict.key_hash != caller.hash):
            raise NotFound("no audit with this id")
        return json_response(verdict.public())

    return [Route("/v1/audits/{id}", get_audit, methods=["GET"])]
