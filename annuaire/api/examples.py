"""One example per object the API serves, shown in specs/openapi.json.

The values come from the synthetic SANDBOX académie (``aiguillage sample academie``): no real
person. A test validates every example against its own schema, so they cannot drift.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel

__all__ = ["EXAMPLES", "page_example", "registre_examples"]

_AT = "2026-09-15T22:04:11.417626Z"
_TRACKED = {"status": "active", "leaving_since": None, "modified_at": _AT, "source": "aaf"}
_STRUCTURE_ID = "5acad048-ad7d-5141-9802-c32c6d594f48"
_PUPIL_ID = "0025dafb-fee0-5ec5-9c28-b4688219668f"
_CLASS_ID = "8a3d8470-d382-5eb3-8e04-2f42561f9a13"

_ROLE_SUMMARY = {
    "structure_id": _STRUCTURE_ID,
    "structure_uai": "0775923V",
    "role": "pupil",
    "function_code": None,
    "function_label": None,
    "discipline_code": None,
    "discipline_label": None,
    "start_date": None,
    "end_date": None,
    "level_code": "10010012110",
    "subject_codes": ["030201", "030602"],
    "status": "active",
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "StructurePublic": {
        "id": _STRUCTURE_ID,
        **_TRACKED,
        "uai": "0775923V",
        "name": "JEAN MOULIN",
        "kind": "college",
        "type_label": "COLLEGE",
        "type_code": "340",
        "degree": "2d",
        "sector": "PU",
        "academie": "099",
        "academie_name": "SANDBOX",
        "ministry": "MINISTERE DE L'EDUCATION NATIONALE",
        "siret": "21773731686975",
        "street": "70 AVENUE DE LA REPUBLIQUE",
        "postal_code": "77340",
        "city": "PONTAULT-COMBAULT",
        "phone": "+33 1 96 77 66 47",
        "email": "ce.0775923V@ac-sandbox.invalid",
        "parent_id": None,
        "external_ids": [
            {"type": "aaf:ENTStructureJointure", "value": "20005"},
            {"type": "uai", "value": "0775923V"},
        ],
    },
    "PersonPublic": {
        "id": _PUPIL_ID,
        **_TRACKED,
        "usage_name": "BONNET",
        "birth_name": "BONNET",
        "first_name": "LINA",
        "other_first_names": ["LINA", "CORINNE"],
        "birth_date": "2013-09-17",
        "civility": None,
        "email": None,
        "phone_home": None,
        "phone_mobile": None,
        "phone_work": None,
        "address_lines": ["31 RUE DE LA FONTAINE"],
        "postal_code": "77340",
        "city": "PONTAULT-COMBAULT",
        "country": "FRANCE",
        "external_ids": [
            {"type": "aaf:ENTPersonJointure", "value": "1000337"},
            {"type": "ine", "value": "1981042374D"},
        ],
        "roles": [_ROLE_SUMMARY],
    },
    "RoleSummary": _ROLE_SUMMARY,
    "ExternalIdPublic": {"type": "aaf:ENTPersonJointure", "value": "1000337"},
    "RolePublic": {
        "id": "004768ee-def1-596f-8543-e964326fdd01",
        **_TRACKED,
        "person_id": "4d999e5d-2278-50f2-a5c5-2b6bc957f7dd",
        "structure_id": _STRUCTURE_ID,
        "role": "teacher",
        "function_code": "ENS",
        "function_label": "ENSEIGNEMENT",
        "discipline_code": "L0202",
        "discipline_label": "LETTRES MODERNES",
        "start_date": None,
        "end_date": None,
        "level_code": None,
        "subject_codes": [],
    },
    "SchoolClassPublic": {
        "id": _CLASS_ID,
        **_TRACKED,
        "structure_id": _STRUCTURE_ID,
        "code": "6C",
        "label": "6EME",
        "level_codes": ["10010012110"],
    },
    "GroupPublic": {
        "id": "033dbe79-9e32-548b-bee2-e2144285635a",
        **_TRACKED,
        "structure_id": _STRUCTURE_ID,
        "code": "5E LAT",
        "label": None,
        "class_ids": ["262490a9-2424-5d55-b220-1f4b6dc31cf3"],
    },
    "EnrollmentPublic": {
        "id": "0001ef1a-dec7-5f4d-b6f2-8a41cdce75e5",
        **_TRACKED,
        "person_id": _PUPIL_ID,
        "structure_id": _STRUCTURE_ID,
        "class_id": _CLASS_ID,
        "group_id": None,
        "role": "pupil",
        "subject_code": None,
        "start_date": "2026-09-01",
        "end_date": None,
    },
    "GuardianshipPublic": {
        "id": "000bca0e-c0cd-5237-8e52-07905d9990a4",
        **_TRACKED,
        "guardian_id": "f6b8a775-d1d0-53eb-a22b-26eae6453a04",
        "pupil_id": _PUPIL_ID,
        "relation": "mother",
        "relation_code": "20",
        "legal": True,
        "financial": True,
        "contact": True,
        "payment": True,
        "residence": True,
    },
    "SubjectPublic": {
        "id": "0255ade3-4776-5d97-bd0a-cf84cde94787",
        **_TRACKED,
        "code": "030901",
        "label": "ITALIEN LV1",
        "parent_code": None,
    },
    "LevelPublic": {
        "id": "046076fb-698b-5c33-bc14-cd28a2e95f89",
        **_TRACKED,
        "code": "1125",
        "label": "CM2",
        "kind": "1d_level",
        "parent_code": None,
        "stat_code": None,
    },
    "ImportRunPublic": {
        "scope": "aaf:099:2d",
        "source": "aaf",
        "academie": "099",
        "uai": None,
        "degree": "2d",
        "mode": "delta",
        "files": ["ENT_SANDBOX_Delta_20260916_Eleve_0000.xml"],
        "started_at": "2026-09-16T22:00:02.101000Z",
        "finished_at": "2026-09-16T22:00:05.730000Z",
        "duration_s": 3.63,
        "outcome": "applied",
        "message": None,
        "counts": {"person": {"created": 12, "updated": 30, "unchanged": 0, "leaving": 4}},
        "warning_count": 1,
        "warnings": [
            {
                "file": "ENT_SANDBOX_Delta_20260916_Eleve_0000.xml",
                "line": 412,
                "record": "1004410",
                "message": "class 5B of structure 0775923V is not in the export",
            }
        ],
        "id": "e4e73a82-54dc-4830-8757-2c8dadc1a17f",
    },
    "ChangeEntryPublic": {
        "seq": 18234,
        "entity_type": "person",
        "entity_id": _PUPIL_ID,
        "op": "leave",
        "at": _AT,
        "structures": ["0775923V"],
    },
    "FeedCursor": {"cursor": "WzEsImNoYW5nZXMiLCIiLFsiMTgyMzQiXV0"},
}


def page_example(item: str) -> dict[str, Any]:
    """A page of the example ``item`` whose ``next`` is a cursor its operation accepts: of the
    same collection (or the feed), for no filter, after that item."""
    from .cursors import encode_cursor, filters_fingerprint
    from .resources import RESOURCES

    example = EXAMPLES[item]
    if item == "ChangeEntryPublic":
        return {"items": [example], "next": encode_cursor("changes", "", [str(example["seq"])])}
    resource = next(r for r in RESOURCES.values() if r.public.__name__ == item)
    key = [str(example[column]) for column in resource.order]
    next_cursor = encode_cursor(resource.name, filters_fingerprint({}), key)
    return {"items": [example], "next": next_cursor}


def registre_examples() -> dict[str, dict[str, Any]]:
    """An example of every object of ``/v1/registre``, by model name: the register built from
    the bundled example file with one observed flow per activity, and an access report."""
    from annuaire.registre import EXAMPLE_FILE, Transfer, load_registre
    from annuaire.registre.person import PersonFlow, PersonReport, RecipientSummary
    from annuaire.registre.register import (
        ActivityVersion,
        ClientContract,
        FlowLogSummary,
        ObservedFlow,
        build_register,
    )
    from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation, RecipientKind

    at = dt.datetime(2026, 9, 15, 22, 4, 11, tzinfo=dt.UTC)
    config = load_registre(EXAMPLE_FILE)
    flow = ObservedFlow(
        activity_version=1,
        flow=FlowKind.API_CLIENT,
        operation=Operation.READ,
        recipient_kind=RecipientKind.CLIENT,
        recipient="ent-Xk2v9QpLr3sT",
        recipient_name="ENT des lycées — éditeur",
        entries=1840,
        persons=52_311,
        failures=0,
        data_categories=[DataCategory.IDENTIFIERS, DataCategory.IDENTITY_NAME],
        structures=["0775923V"],
        first_at=at,
        last_at=at + dt.timedelta(days=30),
    )
    version = ActivityVersion(version=1, digest="0" * 63 + "1", recorded_at=at)
    contract = ClientContract(
        client_id="ent-Xk2v9QpLr3sT",
        name="ENT des lycées — éditeur",
        issuer=None,
        structures=["0775923V"],
        scopes=["roster-core.readonly"],
        data_categories=[
            DataCategory.IDENTIFIERS,
            DataCategory.IDENTITY_NAME,
            DataCategory.PROFESSIONAL,
            DataCategory.RELATIONS,
            DataCategory.SCHOOLING,
        ],
        created_at=at - dt.timedelta(days=2),
        revoked_at=None,
    )
    register = build_register(
        config,
        flows={config.activities[0].id: [flow]},
        versions={a.id: [version] for a in config.activities},
        contracts={config.activities[0].id: [contract]},
        flow_log=FlowLogSummary(
            retention_months=12,
            entries=1841,
            oldest_at=at,
            newest_at=at + dt.timedelta(days=30),
            last_checkpoint_seq=1000,
            last_checkpoint_at=at + dt.timedelta(days=20),
            purged_entries=0,
            last_purge_at=None,
            verified=True,
            verification_message="flow log: 1,841 entries 1..1841: intact",
            last_checkpoint=_signed_checkpoint(at + dt.timedelta(days=20)),
        ),
        now=at + dt.timedelta(days=31),
    )
    person_flow = PersonFlow(
        seq=1203,
        occurred_at=at,
        flow=FlowKind.API_CLIENT,
        operation=Operation.READ,
        activity=config.activities[0].id,
        activity_version=1,
        recipient_kind=RecipientKind.CLIENT,
        recipient="ent-Xk2v9QpLr3sT",
        recipient_name="ENT des lycées — éditeur",
        data_categories=[DataCategory.IDENTIFIERS, DataCategory.IDENTITY_NAME],
        structures=["0775923V"],
        outcome="success",
        request_id="5f0c3a9e2b7d4e61",
    )
    report = PersonReport(
        person_id=uuid.UUID(_PUPIL_ID),
        pseudonym="3f9a0c41d2e87b65a0c1d2e3f4a5b6c7",
        generated_at=at,
        log_retention_months=12,
        log_since=at - dt.timedelta(days=300),
        recipients=[
            RecipientSummary(
                recipient_kind=RecipientKind.CLIENT,
                recipient="ent-Xk2v9QpLr3sT",
                recipient_name="ENT des lycées — éditeur",
                flows=1,
                first_at=at,
                last_at=at,
                data_categories=[DataCategory.IDENTIFIERS, DataCategory.IDENTITY_NAME],
            )
        ],
        flows=[person_flow],
    )
    transfer = Transfer(
        recipient="Support de niveau 3 de l'éditeur",
        country="CH",
        safeguard="Décision d'adéquation de la Commission européenne",
        documentation="Annexe 4 de la convention de sous-traitance",
    )
    found: dict[str, dict[str, Any]] = {}
    for model in (register, report, transfer):
        _collect(model, found)
    return found


def _signed_checkpoint(at: dt.datetime) -> Any:
    """A checkpoint signed with a fixed example key (that verifies, as a real one does)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from annuaire.encoding import b64url_encode
    from annuaire.registre.flowlog import checkpoint_message
    from annuaire.registre.register import PublicSigningKey, SignedCheckpoint

    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    fields = {
        "id": 1,
        "first_seq": 1,
        "last_seq": 1000,
        "head_hash": "9c1e" * 16,
        "previous_signature": "",
        "key_id": "s-example",
        "signed_at": at,
    }
    message = checkpoint_message(fields)
    return SignedCheckpoint(
        message=message.decode(),
        signature=b64url_encode(key.sign(message)),
        public_key=PublicSigningKey(
            kty="OKP",
            crv="Ed25519",
            kid="s-example",
            x=b64url_encode(key.public_key().public_bytes_raw()),
        ),
    )


def _collect(value: Any, found: dict[str, dict[str, Any]]) -> None:
    """The first instance of every model in ``value``'s tree, dumped as JSON, by model name."""
    if isinstance(value, BaseModel):
        found.setdefault(type(value).__name__, value.model_dump(mode="json"))
        for name in type(value).model_fields:
            _collect(getattr(value, name), found)
    elif isinstance(value, list | tuple):
        for item in value:
            _collect(item, found)
