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

#: The modules that define the names of ``__all__``: loaded together on the first use of one.
_MODULES = ("activities", "register", "vocabulary")


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    for module in _MODULES:
        found = importlib.import_module(f".{module}", __name__)
        globals().update({n: getattr(found, n) for n in __all__ if hasattr(found, n)})
    return globals()[name]  # looked up once: the names are globals now


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
