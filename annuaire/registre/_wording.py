"""The French wording of the register, shared by its CSV and HTML renderings.

A fiche reads as (heading, values) pairs in the order of the CNIL model; the CSV joins the
values of a heading in one cell, the HTML lists them. Plain text only: escaping is the HTML
template's business (autoescape).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

from .activities import Party

if TYPE_CHECKING:
    from .register import ActivitySheet, ClientContract, ObservedFlow, Register

JOIN = " | "

IDENTIFICATION_HEADINGS = (
    "Identifiant",
    "Nom du traitement",
    "Version",
    "Statut",
    "Type de registre",
    "Responsable de traitement",
    "Types de flux",
    "Empreinte (SHA-256)",
)

FICHE_HEADINGS = (
    "Dates de création et de mise à jour",
    "Responsable de la fiche",
    "Responsable(s) conjoint(s)",
    "Finalité(s)",
    "Base légale",
    "Catégories de personnes concernées",
    "Catégories de données",
    "Données sensibles",
    "Durées de conservation",
    "Catégories de destinataires",
    "Destinataires sous contrat (clients de l'API)",
    "Sous-traitants",
    "Transferts hors UE",
    "Mesures de sécurité",
    "AIPD",
    "Exercice des droits",
    "Historique des versions",
)

FLOW_COLUMNS = (
    "Version de la fiche",
    "Type de flux",
    "Opération",
    "Destinataire",
    "Entrées",
    "Personnes concernées (cumul)",
    "Échecs",
    "Catégories de données",
    "Catégories non déclarées par la fiche",
    "Établissements (UAI)",
    "Premier flux",
    "Dernier flux",
)


def day(value: date) -> str:
    return value.strftime("%d/%m/%Y")


def when(value: datetime | None) -> str:
    return value.strftime("%d/%m/%Y %H:%M UTC") if value else "—"


def party(value: Party) -> str:
    kind = value.kind.label + (f", UAI {value.uai}" if value.uai else "")
    contact = [value.address, value.email] + ([value.phone] if value.phone else [])
    if value.dpo is not None:
        dpo = value.dpo
        reach = [dpo.name, dpo.organisation, dpo.email] + ([dpo.phone] if dpo.phone else [])
        contact.append("DPO : " + " — ".join(reach))
    return f"{value.name} ({kind}) — " + " — ".join(contact)


def fiche(sheet: ActivitySheet) -> list[tuple[str, list[str]]]:
    """The fiche as (heading, values): identification, then the CNIL headings in order."""
    identification = [
        [sheet.id],
        [sheet.name],
        [str(sheet.version)],
        [sheet.status.label],
        [sheet.register_kind.label],
        [party(sheet.controller)],
        [f"{kind.label} ({kind})" for kind in sheet.flows],
        [sheet.digest],
    ]
    headings = [
        [f"Créée le {day(sheet.created)}", f"Mise à jour le {day(sheet.updated)}"],
        [sheet.responsible],
        [party(p) for p in sheet.joint_controllers] or ["Aucun"],
        [f"Finalité principale : {sheet.purposes[0]}"]
        + [f"Sous-finalité : {purpose}" for purpose in sheet.purposes[1:]],
        [f"{sheet.legal_basis.article.label} — {sheet.legal_basis.reference}"],
        [subject.label for subject in sheet.data_subjects],
        [category.label for category in sheet.data_categories],
        [f"Oui — {sheet.sensitive_data_note}"] if sheet.sensitive_data else ["Non"],
        [
            f"{rule.data_category.label} : {rule.period} (suppression : {rule.deletion_trigger})"
            for rule in sheet.retention
        ],
        [
            f"{r.category} — {r.name} ({r.country})"
            + (f", contrat {r.contract}" if r.contract else "")
            for r in sheet.recipients
        ],
        [contract(c) for c in sheet.client_contracts] or ["Aucun client sous contrat"],
        _processors(sheet) or ["Aucun"],
        [
            f"{t.recipient} ({t.country}) — garantie : {t.safeguard} — documentation : "
            f"{t.documentation}"
            for t in sheet.transfers_outside_eu
        ]
        or ["Aucun transfert hors de l'Union européenne"],
        [measure.label for measure in sheet.security_measures.checklist]
        + [f"Précisions : {sheet.security_measures.details}"],
        [_dpia(sheet)],
        [sheet.data_subject_rights],
        [
            f"Version {v.version} enregistrée le {when(v.recorded_at)} (empreinte {v.digest[:12]}…)"
            for v in sheet.history
        ]
        or ["Version 1 : aucune version enregistrée par le hub"],
    ]
    return list(
        zip(IDENTIFICATION_HEADINGS + FICHE_HEADINGS, identification + headings, strict=True)
    )


def contract(value: ClientContract) -> str:
    """An ENT client's contract: who, since when, which schools, what it may read."""
    issued = f", jetons émis par {value.issuer}" if value.issuer else ""
    state = f"révoqué le {when(value.revoked_at)}" if value.revoked_at else "en vigueur"
    return (
        f"{value.name} ({value.client_id}{issued}) — contrat du {when(value.created_at)}, "
        f"{state} — établissements : {', '.join(value.structures)} — portées : "
        f"{', '.join(value.scopes)} — données : "
        + ", ".join(category.label for category in value.data_categories)
    )


def _processors(sheet: ActivitySheet) -> list[str]:
    rows = []
    if sheet.processor:
        rows.append(
            f"Sous-traitant : {sheet.processor.name} (contrat : {sheet.processor.contract})"
        )
    rows += [
        f"Sous-traitant ultérieur : {s.name} — {s.service} — {s.location} — contrat : "
        f"{s.contract} — autorisé le {day(s.authorised_on)}"
        for s in sheet.sub_processors
    ]
    return rows


def _dpia(sheet: ActivitySheet) -> str:
    dpia = sheet.dpia
    if not dpia.required:
        return "Non requise" + (f" (référence {dpia.reference})" if dpia.reference else "")
    parts = [f"Requise — référence {dpia.reference or 'à venir'}"]
    if dpia.done_on:
        parts.append(f"réalisée le {day(dpia.done_on)}")
    if dpia.next_review:
        parts.append(f"prochaine revue le {day(dpia.next_review)}")
    return ", ".join(parts)


def recipient(flow: ObservedFlow) -> str:
    if flow.recipient is None:
        return f"{flow.recipient_kind.label} (personnes comptées, non listées)"
    name = f"{flow.recipient_name} ({flow.recipient})" if flow.recipient_name else flow.recipient
    return f"{flow.recipient_kind.label} : {name}"


def flow_row(flow: ObservedFlow) -> list[str]:
    return [
        str(flow.activity_version),
        flow.flow.label,
        flow.operation.label,
        recipient(flow),
        str(flow.entries),
        str(flow.persons),
        str(flow.failures),
        JOIN.join(category.label for category in flow.data_categories),
        JOIN.join(category.label for category in flow.undeclared_categories) or "—",
        JOIN.join(flow.structures),
        when(flow.first_at),
        when(flow.last_at),
    ]


def common_rows(register: Register) -> list[tuple[str, str]]:
    """The common page of the CNIL model, as (rubrique, valeur)."""
    org, dpo, log = register.organisation, register.dpo, register.flow_log
    verified = {
        None: "Non vérifié pour cet export",
        True: "Intègre (chaîne et points de contrôle vérifiés)",
        False: "ÉCHEC de la vérification",
    }[log.verified]
    if log.verification_message:
        verified += f" — {log.verification_message}"
    checkpoint = (
        f"n° {log.last_checkpoint_seq}, le {when(log.last_checkpoint_at)}"
        if log.last_checkpoint_seq is not None
        else "Aucun"
    )
    return [
        ("Organisme", org.name),
        ("Adresse", org.address),
        ("Courriel", org.email),
        ("Téléphone", org.phone or "—"),
        ("Délégué à la protection des données", dpo.name),
        ("Organisme du DPO", dpo.organisation),
        ("Courriel du DPO", dpo.email),
        ("Téléphone du DPO", dpo.phone or "—"),
        ("Registre produit le", when(register.generated_at)),
        ("Format", register.format),
        ("Conservation du journal des flux", f"{log.retention_months} mois"),
        ("Entrées du journal conservées", str(log.entries)),
        ("Plus ancienne entrée", when(log.oldest_at)),
        ("Plus récente entrée", when(log.newest_at)),
        ("Dernier point de contrôle signé", checkpoint),
        ("Entrées purgées", str(log.purged_entries)),
        ("Dernière purge", when(log.last_purge_at)),
        ("Vérification du journal", verified),
    ]


ACTIVITY_COLUMNS = (
    "Identifiant",
    "Nom du traitement",
    "Type de registre",
    "Statut",
    "Version",
    "Mise à jour",
    "Types de flux",
    "Flux observés (entrées)",
)


def activity_row(sheet: ActivitySheet) -> list[str]:
    return [
        sheet.id,
        sheet.name,
        sheet.register_kind.label,
        sheet.status.label,
        str(sheet.version),
        day(sheet.updated),
        JOIN.join(sheet.flows),
        str(sum(flow.entries for flow in sheet.observed_flows)),
    ]


def common_table(register: Register) -> list[list[str]]:
    """organisation.csv: the common page, a blank row, then the list of activities."""
    return (
        [["Rubrique", "Valeur"]]
        + [[heading, value] for heading, value in common_rows(register)]
        + [[], list(ACTIVITY_COLUMNS)]
        + [activity_row(sheet) for sheet in register.activities]
    )
