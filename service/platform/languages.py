"""Language tags: what a clinic's languages and a patient's profile name (pure)."""

from __future__ import annotations

from typing import Annotated

import msgspec

LanguageTag = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$",
        max_length=35,
        description="BCP 47 language tag",
        examples=["en", "es-MX"],
    ),
]
