"""The flow-log entry of an API request: who read which categories of data about whom.

A :class:`Journal` is made per request (route, request id) by the reader dependency; the
:class:`~annuaire.api.resources.Reader` calls it once the data to serve is read and before any
byte of it is sent, and it returns once the entry is committed (by the process's
:class:`~annuaire.registre.writer.FlowWriter`). The flow, the activity and the actor come
from the principal:

=================  ======================  =====================================  ==============
principal          flow                    activity                               actor
=================  ======================  =====================================  ==============
ENT client         ``api-client``          the one its contract names             its client id
guardian, pupil    ``api-educonnect``      the one claiming ``api-educonnect``    pseudonym
staff              ``api-guichet-agent``   the one claiming ``api-guichet-agent`` pseudonym
DPO (staff)        ``registre``            the one claiming ``registre``          pseudonym
operator           ``api-operator``        the one claiming ``api-operator``      ``operator``
=================  ======================  =====================================  ==============

Persons (callers and subjects) appear only as pseudonyms (annuaire.registre.keys).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass

from annuaire.auth import Principal, PrincipalKind
from annuaire.auth.clients import contract_refusal
from annuaire.registre.flowlog import FlowRecord
from annuaire.registre.runtime import Registre
from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation, RecipientKind
from annuaire.registre.writer import FlowWriter

from .problems import ApiProblem, ProblemType

__all__ = ["Journal"]

_FLOWS = {
    PrincipalKind.CLIENT: (FlowKind.API_CLIENT, RecipientKind.CLIENT),
    PrincipalKind.GUARDIAN: (FlowKind.API_EDUCONNECT, RecipientKind.GUARDIAN),
    PrincipalKind.PUPIL: (FlowKind.API_EDUCONNECT, RecipientKind.PUPIL),
    PrincipalKind.STAFF: (FlowKind.API_GUICHET_AGENT, RecipientKind.STAFF),
    PrincipalKind.OPERATOR: (FlowKind.API_OPERATOR, RecipientKind.OPERATOR),
}


@dataclass(frozen=True)
class Journal:
    registre: Registre
    writer: FlowWriter
    request_id: str | None
    #: ``GET /v1/persons/{id}``: the route, not the URL (no id, no query string).
    target: str

    def record(
        self,
        principal: Principal,
        *,
        operation: Operation,
        categories: Collection[DataCategory],
        persons: Collection[uuid.UUID],
        structures: Collection[str],
        payload_digest: str | None = None,
        as_dpo: bool = False,
    ) -> int:
        """Commit the entry; its sequence number (raises if it could not be written)."""
        flow, actor_kind = _FLOWS[principal.kind]
        if as_dpo:
            flow, actor_kind = FlowKind.REGISTRE, RecipientKind.DPO
        record = FlowRecord(
            flow=flow,
            operation=operation,
            activity=self.activity(principal, flow),
            actor_kind=actor_kind,
            actor=self.actor(principal),
            client_id=principal.client_id,
            scopes=principal.scopes,
            target=self.target,
            categories=categories,
            structures=structures,
            subjects=persons,
            payload_digest=payload_digest,
            request_id=self.request_id,
        )
        return self.writer.write(self.registre.log, record)

    def activity(self, principal: Principal, flow: FlowKind) -> str:
        if flow is not FlowKind.API_CLIENT:
            return self.registre.activity_id(flow)
        refusal = contract_refusal(
            self.registre.client_activities,
            principal.client_id,
            principal.activity,
            principal.scopes,
        )
        if refusal is not None:
            raise ApiProblem(ProblemType.FORBIDDEN, f"{refusal}; nothing can be served under it")
        assert principal.activity is not None  # a refusal otherwise
        return principal.activity

    def actor(self, principal: Principal) -> str:
        if principal.kind is PrincipalKind.CLIENT:
            return principal.client_id or principal.subject
        if principal.kind is PrincipalKind.OPERATOR:
            return "operator"
        if principal.person_id is not None:
            return self.registre.keys.pseudonym(principal.person_id)
        return self.registre.keys.pseudonym_of_text(principal.subject)
