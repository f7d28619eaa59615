"""Access rules: which rows and which fields of a resource a principal may read.

One place for every rule. The query layer asks :meth:`AccessRules.visibility` once per query
and ANDs its SQL predicate with the caller's filters (``rule AND (filters)``), so a filter can
only narrow what the rule allows, and the same rule covers lists, single reads, NDJSON exports
and the change feed. A row outside the rule is indistinguishable from a row that does not
exist: single reads answer 404, lists and the feed leave it out.

- operator: everything (development and tests without issuers only);
- ENT client: the structures of its contract, and only with ``roster-core.readonly``; person
  fields of the demographics group (birth date, e-mail, phones, address) only with
  ``roster-demographics.readonly``; never the import runs;
- head of school and administrative staff: their structures;
- teacher: their classes and groups, the persons enrolled in them and themself, without the
  demographics group;
- guardian: themself and the pupils they are the legal representative of, and what belongs
  to them (roles, enrollments, their guardianships, and the classes, groups and structures
  their active enrollments and roles reach);
- pupil: themself and what belongs to them (roles, enrollments, and the classes, groups and
  structures their active enrollments and roles reach).

Subjects and levels (national nomenclatures, no personal data), and their entries in the
change feed, are visible to every authenticated principal who may read the roster. Before the
rules apply, :meth:`AccessRules.resolve` turns the token's claims into a person of the store
(or refuses it): see annuaire.auth.principal.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import (
    ColumnElement,
    Connection,
    Dialect,
    Table,
    and_,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError

from annuaire.schema import (
    EDUCONNECT_ID_ONLY,
    ChangeEntry,
    Enrollment,
    ExternalId,
    Guardianship,
    ImportRun,
    Person,
    Role,
    SchoolClass,
    Status,
    Structure,
)
from annuaire.settings import HUB_ISSUER_NAME
from annuaire.store.engine import placeholder

from .devtokens import dev_issuer_name
from .principal import Principal, PrincipalKind, StaffRole, Unauthenticated

if TYPE_CHECKING:
    from annuaire.registre.runtime import Registre

__all__ = ["CORE_SCOPE", "DEMOGRAPHICS", "DEMOGRAPHICS_SCOPE", "AccessRules", "Visibility"]

CORE_SCOPE = "roster-core.readonly"
DEMOGRAPHICS_SCOPE = "roster-demographics.readonly"
#: Person fields that need the demographics scope (clients) and that teachers never read.
DEMOGRAPHICS = frozenset(
    {
        "birth_date",
        "email",
        "phone_home",
        "phone_mobile",
        "phone_work",
        "address_lines",
        "postal_code",
        "city",
        "country",
    }
)
_NOMENCLATURES = frozenset({"subjects", "levels"})

_PERSON: Table = Person.__table__  # type: ignore[attr-defined]
_ROLE: Table = Role.__table__  # type: ignore[attr-defined]
_ENROLLMENT: Table = Enrollment.__table__  # type: ignore[attr-defined]
_GUARDIANSHIP: Table = Guardianship.__table__  # type: ignore[attr-defined]
_EXTERNAL_ID: Table = ExternalId.__table__  # type: ignore[attr-defined]
_STRUCTURE: Table = Structure.__table__  # type: ignore[attr-defined]
_CLASS: Table = SchoolClass.__table__  # type: ignore[attr-defined]
_CHANGES: Table = ChangeEntry.__table__  # type: ignore[attr-defined]
_IMPORT_RUN: Table = ImportRun.__table__  # type: ignore[attr-defined]
# What grants rights is what the source still gives: a person, role, guardianship or teaching
# link that is leaving (``tobedeleted``, until the purge) grants none. The rows a principal may
# read can be leaving (a sync client must learn that they leave).
_ACTIVE = Status.ACTIVE.value
_PERSON_ACTIVE = _PERSON.c.status == _ACTIVE
_ROLE_ACTIVE = _ROLE.c.status == _ACTIVE
_ENROLLED = _ENROLLMENT.c.status == _ACTIVE
_LEGAL_GUARDIANSHIP = and_(_GUARDIANSHIP.c.legal.is_(True), _GUARDIANSHIP.c.status == _ACTIVE)
_JOIN_KEY = "aaf:ENTPersonJointure"
#: The issuers whose tokens carry the contracts of the hub's own clients (names no configured
#: issuer may take: see annuaire.settings.check_issuer_names).
_HUB_ISSUERS = (HUB_ISSUER_NAME, dev_issuer_name("client_credentials"))
_EDUCONNECT_ID = "educonnect:FrEduCtId"
#: The longest value an external id holds (its column's length).
_EXTERNAL_ID_CHARS: int = _EXTERNAL_ID.c.value.type.length  # type: ignore[attr-defined]
log = logging.getLogger("aiguillage.auth")


@dataclass(frozen=True)
class Visibility:
    #: SQL predicate on the resource's table, or None when every row is visible.
    rows: ColumnElement[bool] | None
    #: Fields the principal may read, or None for all of them.
    fields: frozenset[str] | None
    #: The rows are a family's (a guardian's or a pupil's own, and their pupils'): what these
    #: persons are in a school is schooling data, never professional (see
    #: annuaire.api.resources.Resource.categories_of).
    family: bool = False


_FALSE = false()
_FAMILY = frozenset((PrincipalKind.GUARDIAN, PrincipalKind.PUPIL))
_EVERYTHING = Visibility(rows=None, fields=None)
_NOTHING = Visibility(rows=_FALSE, fields=None)


def _in_structures(table: Table, uais: frozenset[str]) -> ColumnElement[bool]:
    """Rows whose ``|UAI|UAI|`` column names one of ``uais``."""
    if not uais:
        return _FALSE
    return or_(*[table.c.structures.contains(f"|{uai}|", autoescape=True) for uai in sorted(uais)])


class AccessRules:
    """Resolution of principals against the store, and the row and field rules.

    With ``registre`` (the API's), the one write a resolution may make — keeping a first
    login's ``FrEduCtId``, an identifier collected from EduConnect — commits with its flow
    entry; without one (tests of the rules alone) it is kept unlogged.
    """

    def __init__(self, registre: Registre | None = None) -> None:
        self.registre = registre

    # -- resolution --------------------------------------------------------------------------

    def resolve(self, connection: Connection, principal: Principal) -> Principal:
        """The principal with its person (or contract) found in the store; 401 otherwise.

        Runs in the request's own connection, before its queries. A client is looked up on
        every request, so a revoked client is refused at once.
        """
        if principal.resolved:
            return principal
        if principal.kind is PrincipalKind.CLIENT:
            return self._resolve_client(connection, principal)
        if principal.kind is PrincipalKind.STAFF:
            return self._resolve_staff(connection, principal)
        return self._resolve_educonnect(connection, principal)

    def _resolve_client(self, connection: Connection, principal: Principal) -> Principal:
        # On every request (revocation applies at once), so through the driver directly: the
        # statement never changes, and SQLAlchemy's statement machinery would triple its cost.
        marker = placeholder(connection)
        cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(
                "SELECT structures, scopes, revoked_at, activity, issuer FROM api_client "
                f"WHERE client_id = {marker}",
                (principal.client_id,),
            )
            row = cursor.fetchone()
        finally:
            cursor.close()
        if row is None or row[2] is not None:
            raise Unauthenticated("this client is unknown or revoked", "client_revoked")
        # A contract is carried by the tokens of the issuer that authenticates its client only:
        # the hub's own for its clients (or the dev issuer, trusted in development only).
        if principal.issuer not in (_HUB_ISSUERS if row[4] is None else (row[4],)):
            raise Unauthenticated(
                f"client {principal.client_id} is not a client of issuer {principal.issuer}",
                "client_revoked",
            )
        structures, scopes = (json.loads(v) if isinstance(v, str) else v for v in row[:2])
        return principal.resolved_as(
            structures=frozenset(structures or ()),
            scopes=principal.scopes & frozenset(scopes or ()),
            activity=row[3],
        )

    def _resolve_educonnect(self, connection: Connection, principal: Principal) -> Principal:
        if principal.join_keys:
            found = self._match_join_keys(connection, principal.join_keys)
            unknown = "no active person of the annuaire has this AAF join key"
        else:
            found = self._match_vector(connection, principal)
            unknown = "FrEduVecteur does not designate exactly one person of the annuaire"
        if len(set(found)) != 1:
            raise Unauthenticated(unknown, "identity")
        person_id = found[0]
        expected = "pupil" if principal.kind is PrincipalKind.PUPIL else None
        if (
            expected
            and not connection.execute(
                select(func.count()).where(
                    _ROLE.c.person_id == person_id, _ROLE.c.role == expected, _ROLE_ACTIVE
                )
            ).scalar()
        ):
            raise Unauthenticated("the affiliation does not match the annuaire", "identity")
        if principal.educonnect_id:
            self._keep_educonnect_id(connection, principal, person_id, principal.educonnect_id)
        return principal.resolved_as(person_id=person_id)

    def _match_join_keys(
        self, connection: Connection, join_keys: Sequence[tuple[str, str]]
    ) -> Sequence[uuid.UUID]:
        """The active persons with these (académie, AAF join key): the key is looked up in the
        scopes whose import runs recorded that académie (a per-school scope included)."""
        runs = _IMPORT_RUN
        found: list[uuid.UUID] = []
        for academie, key in join_keys:
            scopes = select(runs.c.scope).where(runs.c.academie == academie)
            ext = _EXTERNAL_ID
            matched = (
                connection.execute(
                    select(ext.c.entity_id)
                    .join(_PERSON, _PERSON.c.id == ext.c.entity_id)
                    .where(
                        ext.c.entity_type == "person",
                        ext.c.type == _JOIN_KEY,
                        ext.c.value == key,
                        ext.c.scope.in_(scopes),
                        _PERSON_ACTIVE,
                    )
                )
                .scalars()
                .all()
            )
            if not matched and connection.execute(scopes.limit(1)).first() is None:
                raise Unauthenticated(
                    f"no import of académie {academie} is known: its AAF identities cannot be "
                    "resolved",
                    "identity",
                )
            found.extend(matched)
        return found

    def _match_vector(self, connection: Connection, principal: Principal) -> Sequence[uuid.UUID]:
        _profile, last, first, pupil_ref, uai = principal.vector
        ext = _EXTERNAL_ID
        pupils = select(ext.c.entity_id).where(
            ext.c.entity_type == "person", ext.c.type == "siecle:ELEVE_ID", ext.c.value == pupil_ref
        )
        # Literally: a `%` or `_` in the claim is no wildcard.
        in_school = and_(_PERSON.c.structures.contains(f"|{uai}|", autoescape=True), _PERSON_ACTIVE)
        if principal.kind is PrincipalKind.PUPIL:
            query = select(_PERSON.c.id).where(_PERSON.c.id.in_(pupils), in_school)
        else:
            guardians = select(_GUARDIANSHIP.c.guardian_id).where(
                _GUARDIANSHIP.c.pupil_id.in_(pupils), _LEGAL_GUARDIANSHIP
            )
            query = select(_PERSON.c.id).where(
                _PERSON.c.id.in_(guardians),
                func.upper(_PERSON.c.usage_name) == last.upper(),
                func.upper(_PERSON.c.first_name) == first.upper(),
                in_school,
            )
        return connection.execute(query.limit(2)).scalars().all()

    def _keep_educonnect_id(
        self, connection: Connection, principal: Principal, person_id: uuid.UUID, value: str
    ) -> None:
        """Keep ``value`` as the person's ``educonnect:FrEduCtId``, once, and never fail the
        login over it: the person was found by their AAF identity, this id is only noted.

        Keeping it collects an identifier: the row and its flow entry (``collect`` under the
        activity claiming ``api-educonnect``, the person as actor and subject) commit together,
        or neither does; a login that keeps nothing (the id is known) writes no entry."""
        ext = _EXTERNAL_ID
        if len(value) > _EXTERNAL_ID_CHARS:
            # EduConnect's ids have 96 characters: a longer value is no usable id, and an
            # external id cannot hold it (PostgreSQL refuses it; SQLite would store it whole).
            log.warning(
                "FrEduCtId of %d characters not kept (an external id holds %d)",
                len(value),
                _EXTERNAL_ID_CHARS,
            )
            return
        same = and_(
            ext.c.entity_id == person_id, ext.c.type == _EDUCONNECT_ID, ext.c.value == value
        )
        if connection.execute(select(ext.c.id).where(same)).first() is not None:
            return
        # The one write of a read request, in a transaction of its own that looks again: the
        # request's snapshot may predate another request's first login of this person (on
        # SQLite a write from a stale snapshot is refused). The request has written nothing so
        # far: ending its transaction loses nothing. Looking again is not enough on PostgreSQL:
        # simultaneous first logins all look before any of them commits; the partial unique
        # index on these ids makes all but one do nothing.
        if connection.in_transaction():
            connection.commit()
        row = select(
            literal("person"),
            literal(person_id, ext.c.entity_id.type),
            literal(_EDUCONNECT_ID),
            literal(value),
            literal("educonnect"),
        ).where(~exists().where(same))
        columns = ["entity_type", "entity_id", "type", "value", "scope"]
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        keep = (
            dialect.insert(ext)
            .from_select(columns, row)
            .on_conflict_do_nothing(
                index_elements=[ext.c.entity_id, ext.c.type, ext.c.value],
                index_where=text(EDUCONNECT_ID_ONLY),
            )
        )
        try:
            with connection.begin():
                kept = connection.execute(keep).rowcount
                if kept and self.registre is not None:
                    self._log_collected(connection, principal, person_id)
        except DBAPIError as exc:
            if exc.connection_invalidated:
                raise
            log.warning("FrEduCtId of person %s not kept: %s", person_id, type(exc.orig).__name__)

    def _log_collected(
        self, connection: Connection, principal: Principal, person_id: uuid.UUID
    ) -> None:
        from annuaire.registre.flowlog import FlowRecord
        from annuaire.registre.vocabulary import DataCategory, FlowKind, Operation, RecipientKind

        registre = self.registre
        assert registre is not None
        pupil = principal.kind is PrincipalKind.PUPIL
        registre.log.append(
            connection,
            FlowRecord(
                flow=FlowKind.API_EDUCONNECT,
                operation=Operation.COLLECT,
                activity=registre.activity_id(FlowKind.API_EDUCONNECT),
                actor_kind=RecipientKind.PUPIL if pupil else RecipientKind.GUARDIAN,
                actor=registre.keys.pseudonym(person_id),
                client_id=principal.client_id,
                scopes=principal.scopes,
                target="educonnect login: FrEduCtId kept",
                categories={DataCategory.IDENTIFIERS},
                subjects=[person_id],
                source={"issuer": principal.issuer, "claim": "FrEduCtId"},
            ),
        )

    def _resolve_staff(self, connection: Connection, principal: Principal) -> Principal:
        """The agent of the token's e-mail, with the structures both the token and the annuaire
        give them: structure-wide rights (a head, an administrative agent) where the annuaire
        gives them an active role other than teacher, at the ``FrEduRneResp`` structures of a
        head who has some; teacher rights where it gives them any active role. A head or
        agent whom the annuaire knows only as a teacher there is resolved as a teacher."""
        staff_roles = ("teacher", "staff", "head", "director")
        rows = connection.execute(
            select(_PERSON.c.id, _STRUCTURE.c.uai, _ROLE.c.role)
            .join_from(_PERSON, _ROLE, _ROLE.c.person_id == _PERSON.c.id)
            .join(_STRUCTURE, _STRUCTURE.c.id == _ROLE.c.structure_id)
            .where(
                func.lower(_PERSON.c.email) == principal.email,
                _ROLE.c.role.in_(staff_roles),
                _PERSON_ACTIVE,
                _ROLE_ACTIVE,
            )
        ).all()
        people = {row.id for row in rows}
        if len(people) != 1:
            raise Unauthenticated(
                "the e-mail of this token designates no staff member of the annuaire, or several",
                "identity",
            )
        person_id = people.pop()
        known = frozenset(row.uai for row in rows if row.uai)
        if principal.staff_role is not StaffRole.TEACHER:
            wide = principal.responsible or principal.structures
            wide &= frozenset(row.uai for row in rows if row.uai and row.role != "teacher")
            teaching = principal.structures & frozenset(
                row.uai for row in rows if row.uai and row.role == "teacher"
            )
            if wide or not teaching:
                return principal.resolved_as(person_id=person_id, structures=wide)
            known = teaching
        return principal.resolved_as(
            person_id=person_id,
            structures=principal.structures & known,
            staff_role=StaffRole.TEACHER,
        )

    # -- rules -------------------------------------------------------------------------------

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one AccessRules per application
    def visibility(self, principal: Principal, resource: str, table: Table) -> Visibility:
        """The rule of ``principal`` on ``resource`` (cached: principals are immutable)."""
        if principal.unrestricted:
            return _EVERYTHING
        if not principal.resolved:
            raise RuntimeError("access rules need a resolved principal")
        if resource == "import-runs":
            return _NOTHING
        if resource in _NOMENCLATURES:
            return _EVERYTHING if self._may_read_roster(principal) else _NOTHING
        if principal.kind is PrincipalKind.CLIENT:
            if not self._may_read_roster(principal):
                return _NOTHING
            fields = None
            if resource == "persons" and DEMOGRAPHICS_SCOPE not in principal.scopes:
                fields = _public_fields_without_demographics()
            return Visibility(_in_structures(table, principal.structures), fields)
        if principal.kind is PrincipalKind.STAFF and principal.staff_role is not StaffRole.TEACHER:
            return Visibility(_in_structures(table, principal.structures), None)
        rules = self._person_rules(principal)
        predicate = rules.get(resource)
        if predicate is None:
            return _NOTHING
        fields = None
        if resource == "persons" and principal.kind is PrincipalKind.STAFF:
            fields = _public_fields_without_demographics()
        return Visibility(predicate(table), fields, family=principal.kind in _FAMILY)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - one AccessRules per application
    def rows_sql(
        self, principal: Principal, resource: str, table: Table, dialect: Dialect
    ) -> str | None:
        """The row rule of ``principal`` on ``resource`` as SQL text on ``table`` (None: every
        row), for a query written as text (the roles a person document embeds). Its values
        (ids, UAIs) are rendered by SQLAlchemy as escaped literals."""
        rule = self.visibility(principal, resource, table).rows
        if rule is None:
            return None
        sql = str(rule.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
        # Literals are rendered for the driver's paramstyle (``%%`` for psycopg), and the text
        # they go into is escaped again for it: undo the first.
        return sql.replace("%%", "%") if dialect.paramstyle in ("format", "pyformat") else sql

    @staticmethod
    def _may_read_roster(principal: Principal) -> bool:
        return principal.kind is not PrincipalKind.CLIENT or CORE_SCOPE in principal.scopes

    def _person_rules(
        self, principal: Principal
    ) -> dict[str, Callable[[Table], ColumnElement[bool]]]:
        """Row rules of a guardian, a pupil or a teacher, by resource (absent = nothing)."""
        me = principal.person_id
        extra: dict[str, Callable[[Table], ColumnElement[bool]]] = {}
        if principal.kind is PrincipalKind.GUARDIAN:
            pupils = select(_GUARDIANSHIP.c.pupil_id).where(
                _GUARDIANSHIP.c.guardian_id == me, _LEGAL_GUARDIANSHIP
            )

            def persons_clause(column: ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
                return or_(column == me, column.in_(pupils))

            extra["guardianships"] = lambda t: and_(t.c.guardian_id == me, t.c.pupil_id.in_(pupils))
        elif principal.kind is PrincipalKind.PUPIL:

            def persons_clause(column: ColumnElement[uuid.UUID]) -> ColumnElement[bool]:
                return column == me

        else:
            return self._teacher_rules(me, principal.structures)
        mine = select(_PERSON.c.id).where(persons_clause(_PERSON.c.id))
        # Their own roles and enrollments, leaving ones included (they must learn that these
        # leave); the classes, groups and structures those reach, through active ones only.
        enrolled = and_(_ENROLLMENT.c.person_id.in_(mine), _ENROLLED)
        return {
            "persons": lambda t: persons_clause(t.c.id),
            "roles": lambda t: t.c.person_id.in_(mine),
            "enrollments": lambda t: t.c.person_id.in_(mine),
            "classes": lambda t: t.c.id.in_(select(_ENROLLMENT.c.class_id).where(enrolled)),
            "groups": lambda t: t.c.id.in_(select(_ENROLLMENT.c.group_id).where(enrolled)),
            "structures": lambda t: t.c.id.in_(
                select(_ROLE.c.structure_id).where(_ROLE.c.person_id.in_(mine), _ROLE_ACTIVE)
            ),
            **extra,
        }

    @staticmethod
    def _teacher_rules(
        me: uuid.UUID | None, structures: frozenset[str]
    ) -> dict[str, Callable[[Table], ColumnElement[bool]]]:
        """A teacher's classes and groups are those they teach in the token's structures."""
        teaching = and_(
            _ENROLLMENT.c.role.in_(("teacher", "head_teacher")),
            _ENROLLED,
            _in_structures(_ENROLLMENT, structures),
        )
        my_classes = select(_ENROLLMENT.c.class_id).where(
            _ENROLLMENT.c.person_id == me, teaching, _ENROLLMENT.c.class_id.is_not(None)
        )
        my_groups = select(_ENROLLMENT.c.group_id).where(
            _ENROLLMENT.c.person_id == me, teaching, _ENROLLMENT.c.group_id.is_not(None)
        )
        people = select(_ENROLLMENT.c.person_id).where(
            or_(_ENROLLMENT.c.class_id.in_(my_classes), _ENROLLMENT.c.group_id.in_(my_groups)),
            _ENROLLED,
        )
        return {
            "persons": lambda t: or_(t.c.id == me, t.c.id.in_(people)),
            "roles": lambda t: t.c.person_id == me,
            "enrollments": lambda t: or_(
                t.c.person_id == me, t.c.class_id.in_(my_classes), t.c.group_id.in_(my_groups)
            ),
            "classes": lambda t: t.c.id.in_(my_classes),
            "groups": lambda t: t.c.id.in_(my_groups),
            "structures": lambda t: t.c.id.in_(
                select(_ROLE.c.structure_id).where(
                    _ROLE.c.person_id == me, _ROLE_ACTIVE, _in_structures(_ROLE, structures)
                )
            ),
        }

    def feed_visibility(
        self, principal: Principal, tables: dict[str, tuple[str, Table]]
    ) -> Visibility:
        """The rule on the change log: an entry is visible when its entity is.

        ``tables`` maps the feed's entity types to (resource name, table). Entries of purged
        entities are visible to principals with structure-wide rights (their ``structures``
        say where they were), not to people, who could not see them anyway. Entries of the
        entities every row of which the principal may read (subjects and levels: they belong
        to no structure) are visible to all who may read them.
        """
        if principal.unrestricted:
            return _EVERYTHING
        log = _CHANGES
        if principal.kind is PrincipalKind.CLIENT and not self._may_read_roster(principal):
            return _NOTHING
        if principal.kind is PrincipalKind.CLIENT or (
            principal.kind is PrincipalKind.STAFF and principal.staff_role is not StaffRole.TEACHER
        ):
            everywhere = sorted(
                entity_type
                for entity_type, (resource, table) in tables.items()
                if self.visibility(principal, resource, table).rows is None
            )
            where = _in_structures(log, principal.structures)
            return Visibility(
                or_(where, log.c.entity_type.in_(everywhere)) if everywhere else where, None
            )
        clauses = []
        for entity_type, (resource, table) in tables.items():
            rule = self.visibility(principal, resource, table).rows
            if rule is None:
                clauses.append(log.c.entity_type == entity_type)
            elif rule is not _FALSE:
                visible = select(table.c.id).where(rule)
                clauses.append(and_(log.c.entity_type == entity_type, log.c.entity_id.in_(visible)))
        return Visibility(or_(*clauses) if clauses else false(), None)


def _public_fields_without_demographics() -> frozenset[str]:
    from annuaire.schema import PersonPublic

    return frozenset(PersonPublic.model_fields) - DEMOGRAPHICS
