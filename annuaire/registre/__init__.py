"""The RGPD art. 30 register: the declared processing activities and the register document.

The names below are imported on first use (PEP 562): ``aiguillage`` registers its ``registre``
commands without importing the register's models, which its other commands do not need.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .activities import (
        EXAMPLE_FILE,
        Activity,
        ActivityFields,
        Dpia,
        Dpo,
        DpoContact,
        FlowLogPolicy,
        LegalBasisRef,
        Organisation,
        Party,
        Processor,
        Recipient,
        RegistreConfig,
        RegistreConfigError,
        RetentionRule,
        SecurityMeasures,
        SubProcessor,
        Transfer,
        load_registre,
    )
    from .register import (
        FICHE_HEADINGS,
        REGISTER_FORMAT,
        ActivitySheet,
        ActivityVersion,
        ClientContract,
        FlowLogSummary,
        ObservedFlow,
        Register,
        build_register,
        register_json_schema,
        render_csv,
        render_html,
        render_json,
    )
    from .vocabulary import (
        EU_EEA,
        ActivityStatus,
        ControllerKind,
        DataCategory,
        DataSubject,
        FlowKind,
        LegalBasis,
        Operation,
        RecipientKind,
        RegisterKind,
        SecurityMeasure,
    )

#: Public name -> the module of this package that defines it.
_MODULE_OF = {
    # .activities
    "EXAMPLE_FILE": "activities",
    "Activity": "activities",
    "ActivityFields": "activities",
    "Dpia": "activities",
    "Dpo": "activities",
    "DpoContact": "activities",
    "FlowLogPolicy": "activities",
    "LegalBasisRef": "activities",
    "Organisation": "activities",
    "Party": "activities",
    "Processor": "activities",
    "Recipient": "activities",
    "RegistreConfig": "activities",
    "RegistreConfigError": "activities",
    "RetentionRule": "activities",
    "SecurityMeasures": "activities",
    "SubProcessor": "activities",
    "Transfer": "activities",
    "load_registre": "activities",
    # .register
    "FICHE_HEADINGS": "register",
    "REGISTER_FORMAT": "register",
    "ActivitySheet": "register",
    "ActivityVersion": "register",
    "ClientContract": "register",
    "FlowLogSummary": "register",
    "ObservedFlow": "register",
    "Register": "register",
    "build_register": "register",
    "register_json_schema": "register",
    "render_csv": "register",
    "render_html": "register",
    "render_json": "register",
    # .vocabulary
    "EU_EEA": "vocabulary",
    "ActivityStatus": "vocabulary",
    "ControllerKind": "vocabulary",
    "DataCategory": "vocabulary",
    "DataSubject": "vocabulary",
    "FlowKind": "vocabulary",
    "LegalBasis": "vocabulary",
    "Operation": "vocabulary",
    "RecipientKind": "vocabulary",
    "RegisterKind": "vocabulary",
    "SecurityMeasure": "vocabulary",
}


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # looked up once
    return value


__all__ = [
    "EU_EEA",
    "EXAMPLE_FILE",
    "FICHE_HEADINGS",
    "REGISTER_FORMAT",
    "Activity",
    "ActivityFields",
    "ActivitySheet",
    "ActivityStatus",
    "ActivityVersion",
    "ClientContract",
    "ControllerKind",
    "DataCategory",
    "DataSubject",
    "Dpia",
    "Dpo",
    "DpoContact",
    "FlowKind",
    "FlowLogPolicy",
    "FlowLogSummary",
    "LegalBasis",
    "LegalBasisRef",
    "ObservedFlow",
    "Operation",
    "Organisation",
    "Party",
    "Processor",
    "Recipient",
    "RecipientKind",
    "Register",
    "RegisterKind",
    "RegistreConfig",
    "RegistreConfigError",
    "RetentionRule",
    "SecurityMeasure",
    "SecurityMeasures",
    "SubProcessor",
    "Transfer",
    "build_register",
    "load_registre",
    "register_json_schema",
    "render_csv",
    "render_html",
    "render_json",
]
