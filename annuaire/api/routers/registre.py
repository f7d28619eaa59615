"""``/v1/registre``: the art. 30 register and the art. 15 answer, for the DPO only.

Reserved to the data protection officer: a guichet-agent principal whose e-mail is listed in
the register's ``[dpo] accounts`` (the DPO need not be in the annuaire), or the operator of a
development deployment. Anyone else gets a 403. Every call is itself a flow of the log
(``registre``, operation ``log_access``), committed before the answer leaves.
"""

from __future__ import annotations

import hashlib
from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from annuaire.api.deps import PrincipalDep, journal
from annuaire.api.filters import IdPath
from annuaire.api.listing import JSON_OPTIONS
from annuaire.api.problems import ApiProblem, ProblemType, problem_responses
from annuaire.api.resources import Page
from annuaire.auth import Principal, PrincipalKind
from annuaire.registre.person import PersonReport
from annuaire.registre.register import Register, render_json
from annuaire.registre.runtime import Registre
from annuaire.registre.verify import verify_log
from annuaire.registre.vocabulary import DataCategory, Operation
from annuaire.store.engine import read_snapshot

router = APIRouter(prefix="/registre", tags=["registre"])
_ERRORS = problem_responses(
    ProblemType.INVALID_PARAMETER, ProblemType.UNKNOWN_PARAMETER, ProblemType.UNAVAILABLE
)


async def _dpo(request: Request, principal: PrincipalDep) -> Principal:
    registre: Registre = request.app.state.registre
    if principal.kind is PrincipalKind.OPERATOR:
        return principal
    if principal.kind is PrincipalKind.STAFF and registre.is_dpo(principal.email):
        return principal
    raise ApiProblem(
        ProblemType.FORBIDDEN,
        "the register and the flow log are reserved to the data protection officer "
        "(a guichet-agent account listed in the register's [dpo] accounts)",
    )


DpoDep = Annotated[Principal, Depends(_dpo)]


@router.get(
    "",
    response_model=Register,
    responses={200: {"description": "The register of processing activities."}, **_ERRORS},
    operation_id="getRegister",
    summary="The art. 30 register (DPO only)",
)
def get_register(
    request: Request,
    dpo: DpoDep,
    verify: Annotated[
        bool,
        Query(
            description="Also verify the whole flow log (chain, subjects, checkpoints) and say "
            "so in `flow_log.verified`; reads every entry."
        ),
    ] = False,
) -> Response:
    """Every processing activity as declared (one fiche each, with its version history) and
    the flows the log observed under it: recipients, volumes, first and last flow."""
    registre: Registre = request.app.state.registre
    with read_snapshot(request.app.state.flow_engine) as connection:  # the log at one instant
        verification = verify_log(connection, registre.keys) if verify else None
        document = registre.register(connection, verification=verification)
    body = render_json(document)
    _record(request, dpo, {DataCategory.CONNECTION}, Page([body], None))
    return Response(body, media_type="application/json")


@router.get(
    "/persons/{id}/flows",
    response_model=PersonReport,
    responses={200: {"description": "Who received the person's data, and when."}, **_ERRORS},
    operation_id="getPersonFlows",
    summary="Flows of one person's data (DPO only)",
)
def get_person_flows(
    request: Request,
    dpo: DpoDep,
    id: IdPath,
) -> Response:
    """Every flow the log still holds that concerned this person (hub id), and their
    recipients: the answer to an access request (GDPR art. 15(1)(c)). The log's retention bounds
    how far back it goes. An unknown id gives an empty report, not a 404: the person may have
    left the annuaire while flows about them are still logged."""
    registre: Registre = request.app.state.registre
    with request.app.state.flow_engine.connect() as connection:
        report = registre.person_report(connection, id)
    body = orjson.dumps(report.model_dump(mode="json"), option=JSON_OPTIONS)
    categories = {DataCategory.CONNECTION, DataCategory.IDENTIFIERS}
    _record(request, dpo, categories, Page([body], None, persons=[id]))
    return Response(body, media_type="application/json")


def _record(request: Request, dpo: Principal, categories: set[DataCategory], page: Page) -> None:
    """The entry of the DPO's reading of the log, committed before the answer leaves."""
    writer = journal(request)
    if writer is None:
        return
    writer.record(
        dpo,
        operation=Operation.LOG_ACCESS,
        categories=categories,
        persons=page.persons,
        structures=page.structures,
        payload_digest=hashlib.sha256(page.documents[0]).hexdigest(),
        as_dpo=True,
    )
