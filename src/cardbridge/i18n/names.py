"""What a person reads for the model's values (marked with ``N_``, translated where shown)."""

from __future__ import annotations

from cardbridge.i18n import N_

# A certificate's purpose (``model.Purpose``), as ``cardbridge list`` and ``doctor`` name it.
PURPOSES = {"authentication": N_("authentication"), "signing": N_("signing"), "other": N_("other")}
