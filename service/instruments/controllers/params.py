"""The path parameter both instrument controllers take."""

from __future__ import annotations

from typing import Annotated

from litestar.params import PathParameter

InstrumentId = Annotated[
    str,
    PathParameter(
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        max_length=63,
        description="Instrument id, e.g. ucla-3",
    ),
]
