"""Synthetic académies written as real AAF (``ficAlimMENESR``) exports.

Contract:

- :func:`generate_academie` writes a Complet set — ``ENT_<ACAD>_Complet_<YYYYMMDD>_<Cat>_NNNN.xml``
  for 2D (EtabEducNat, MatiereEducNat, MefEducNat, Eleve, PersRelEleve, PersEducNat) and
  ``ENT1D_…`` for 1D (no Matière/MEF) — with VE2407 header comments, ``chunk_size`` records per
  file, every cross-reference resolvable inside the set, and fake personal data only
  (``.invalid`` mail domains).
- :func:`generate_delta` writes the Delta from a folder it or :func:`generate_academie` wrote to
  an evolved state (adds, full-record modifies, deletes at about ``rate``), and optionally the
  Complet of that new state.
- Same arguments and seed give byte-identical files; nothing depends on the clock, the global
  RNG or hash seeds. A ``.sample-manifest.json`` (not ``*.xml``) records the parameters.

See README.md in this folder for the distributions and the CLI.
"""

from __future__ import annotations

from annuaire.schema.uai import is_valid_uai, uai_check_letter

from ._generate import (
    DEFAULT_DATE,
    MANIFEST_NAME,
    Degree,
    GenerationSummary,
    generate_academie,
    generate_delta,
)

__all__ = [
    "DEFAULT_DATE",
    "MANIFEST_NAME",
    "Degree",
    "GenerationSummary",
    "generate_academie",
    "generate_delta",
    "is_valid_uai",
    "uai_check_letter",
]
