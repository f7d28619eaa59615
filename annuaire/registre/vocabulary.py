"""The vocabularies of the register: flow kinds, data categories, legal bases, measures...

Values are what the TOML file, the flow log and the published register use; each member has a
French ``label`` for the documents a DPO reads (HTML and CSV renderings).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = [
    "EU_EEA",
    "ActivityStatus",
    "ControllerKind",
    "DataCategory",
    "DataSubject",
    "FlowKind",
    "LegalBasis",
    "Operation",
    "RecipientKind",
    "RegisterKind",
    "SecurityMeasure",
]


class DataCategory(StrEnum):
    """Categories of personal data, as carried by flows and declared by fiches (never values)."""

    IDENTITY_NAME = "identity.name"
    IDENTITY_BIRTH_DATE = "identity.birth_date"
    CONTACT = "contact"
    IDENTIFIERS = "identifiers"
    PROFESSIONAL = "professional"
    SCHOOLING = "schooling"
    RELATIONS = "relations"
    CONNECTION = "connection"

    @property
    def label(self) -> str:
        return _DATA_CATEGORY_LABELS[self]


_DATA_CATEGORY_LABELS = {
    DataCategory.IDENTITY_NAME: "État civil — nom, prénoms, civilité",
    DataCategory.IDENTITY_BIRTH_DATE: "État civil — date de naissance",
    DataCategory.CONTACT: "Coordonnées — adresse électronique, téléphones, adresse postale",
    DataCategory.IDENTIFIERS: "Identifiants — identifiants du hub, INE, clés de jointure",
    DataCategory.PROFESSIONAL: "Vie professionnelle — fonctions, disciplines, rôles",
    DataCategory.SCHOOLING: "Scolarité — classes, groupes, inscriptions, niveaux",
    DataCategory.RELATIONS: "Relations — responsables légaux et élèves dont ils ont la charge",
    DataCategory.CONNECTION: "Données de connexion — journaux, traces pseudonymes",
}


class FlowKind(StrEnum):
    """The families of data flows; each belongs to the activity that claims it."""

    IMPORT = "import"
    API_CLIENT = "api-client"
    API_EDUCONNECT = "api-educonnect"
    API_GUICHET_AGENT = "api-guichet-agent"
    API_OPERATOR = "api-operator"
    REGISTRE = "registre"

    @property
    def label(self) -> str:
        return _FLOW_KIND_LABELS[self]


_FLOW_KIND_LABELS = {
    FlowKind.IMPORT: "Imports (annuaire fédérateur…) : collecte",
    FlowKind.API_CLIENT: "Lectures par les éditeurs d'ENT sous contrat",
    FlowKind.API_EDUCONNECT: "Lectures par les responsables légaux et les élèves",
    FlowKind.API_GUICHET_AGENT: "Lectures par les personnels",
    FlowKind.API_OPERATOR: "Opérateur non authentifié (développement et test seulement)",
    FlowKind.REGISTRE: "Consultation du journal des flux et du registre par le DPO",
}


class ControllerKind(StrEnum):
    """Who the controller is in the French school context."""

    CHEF_ETABLISSEMENT = "chef_etablissement"
    DASEN = "dasen"
    RECTEUR = "recteur"
    COLLECTIVITE = "collectivite"
    OTHER = "other"

    @property
    def label(self) -> str:
        return _CONTROLLER_KIND_LABELS[self]


_CONTROLLER_KIND_LABELS = {
    ControllerKind.CHEF_ETABLISSEMENT: "Chef d'établissement",
    ControllerKind.DASEN: "Directeur académique des services de l'éducation nationale",
    ControllerKind.RECTEUR: "Recteur d'académie",
    ControllerKind.COLLECTIVITE: "Collectivité territoriale",
    ControllerKind.OTHER: "Autre",
}


class RegisterKind(StrEnum):
    """``controller``: fiche drafted for the controller (art. 30(1)); ``processor``: art. 30(2)."""

    CONTROLLER = "controller"
    PROCESSOR = "processor"

    @property
    def label(self) -> str:
        return {
            RegisterKind.CONTROLLER: "Registre du responsable de traitement (art. 30.1)",
            RegisterKind.PROCESSOR: "Registre du sous-traitant (art. 30.2)",
        }[self]


class ActivityStatus(StrEnum):
    """Status of a fiche: in preparation, in force, or retired (kept for its history)."""

    DRAFT = "draft"
    ACTIVE = "active"
    RETIRED = "retired"

    @property
    def label(self) -> str:
        return {
            ActivityStatus.DRAFT: "En préparation",
            ActivityStatus.ACTIVE: "En vigueur",
            ActivityStatus.RETIRED: "Retirée",
        }[self]


class LegalBasis(StrEnum):
    """GDPR art. 6(1) points."""

    CONSENT = "6(1)(a)"
    CONTRACT = "6(1)(b)"
    LEGAL_OBLIGATION = "6(1)(c)"
    VITAL_INTERESTS = "6(1)(d)"
    PUBLIC_TASK = "6(1)(e)"
    LEGITIMATE_INTERESTS = "6(1)(f)"

    @property
    def label(self) -> str:
        return _LEGAL_BASIS_LABELS[self]


_LEGAL_BASIS_LABELS = {
    LegalBasis.CONSENT: "Art. 6.1.a — consentement",
    LegalBasis.CONTRACT: "Art. 6.1.b — exécution d'un contrat",
    LegalBasis.LEGAL_OBLIGATION: "Art. 6.1.c — obligation légale",
    LegalBasis.VITAL_INTERESTS: "Art. 6.1.d — sauvegarde des intérêts vitaux",
    LegalBasis.PUBLIC_TASK: "Art. 6.1.e — mission d'intérêt public",
    LegalBasis.LEGITIMATE_INTERESTS: "Art. 6.1.f — intérêts légitimes",
}


class DataSubject(StrEnum):
    """Categories of data subjects."""

    PUPILS = "pupils"
    GUARDIANS = "guardians"
    STAFF = "staff"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {
            DataSubject.PUPILS: "Élèves",
            DataSubject.GUARDIANS: "Responsables légaux",
            DataSubject.STAFF: "Personnels",
            DataSubject.OTHER: "Autres personnes",
        }[self]


class SecurityMeasure(StrEnum):
    """The checklist of the CNIL model fiche."""

    ACCESS_CONTROL = "access_control"
    TRACEABILITY = "traceability"
    SOFTWARE_PROTECTION = "software_protection"
    BACKUP = "backup"
    ENCRYPTION = "encryption"
    PROCESSOR_CONTROL = "processor_control"
    PSEUDONYMISATION = "pseudonymisation"
    OTHER = "other"

    @property
    def label(self) -> str:
        return _SECURITY_LABELS[self]


_SECURITY_LABELS = {
    SecurityMeasure.ACCESS_CONTROL: "Contrôle d'accès des utilisateurs",
    SecurityMeasure.TRACEABILITY: "Mesures de traçabilité",
    SecurityMeasure.SOFTWARE_PROTECTION: "Protection des logiciels",
    SecurityMeasure.BACKUP: "Sauvegarde des données",
    SecurityMeasure.ENCRYPTION: "Chiffrement des données",
    SecurityMeasure.PROCESSOR_CONTROL: "Contrôle des sous-traitants",
    SecurityMeasure.PSEUDONYMISATION: "Pseudonymisation",
    SecurityMeasure.OTHER: "Autres mesures",
}

# EU member states and the other EEA states (ISO 3166-1 alpha-2: Greece is GR, not EL).
_EU_EEA_CODES = (
    "AT BE BG CY CZ DE DK EE ES FI FR GR HR HU IE IT LT LU LV MT NL PL PT RO SE SI SK IS LI NO"
)
EU_EEA = frozenset(_EU_EEA_CODES.split())


class Operation(StrEnum):
    """What a flow did with the data (flow-log entries, observed flows of the register)."""

    COLLECT = "collect"
    READ = "read"
    EXPORT = "export"
    DELETE = "delete"
    PURGE = "purge"
    LOG_ACCESS = "log_access"

    @property
    def label(self) -> str:
        return _OPERATION_LABELS[self]


_OPERATION_LABELS = {
    Operation.COLLECT: "Collecte",
    Operation.READ: "Consultation",
    Operation.EXPORT: "Communication",
    Operation.DELETE: "Suppression",
    Operation.PURGE: "Purge",
    Operation.LOG_ACCESS: "Consultation du journal",
}


class RecipientKind(StrEnum):
    """Who received or read the data. People are counted by kind, never listed."""

    CLIENT = "client"
    GUARDIAN = "guardian"
    PUPIL = "pupil"
    STAFF = "staff"
    OPERATOR = "operator"
    IMPORT_JOB = "import_job"
    DPO = "dpo"

    @property
    def label(self) -> str:
        return _RECIPIENT_KIND_LABELS[self]


_RECIPIENT_KIND_LABELS = {
    RecipientKind.CLIENT: "Client de l'API (éditeur)",
    RecipientKind.GUARDIAN: "Responsables légaux",
    RecipientKind.PUPIL: "Élèves",
    RecipientKind.STAFF: "Personnels",
    RecipientKind.OPERATOR: "Opérateur (ligne de commande du hub ; API sans jeton en test)",
    RecipientKind.IMPORT_JOB: "Tâche d'import",
    RecipientKind.DPO: "Délégué à la protection des données",
}
