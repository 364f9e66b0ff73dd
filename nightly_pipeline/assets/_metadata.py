"""Materialization metadata helpers shared by the stage modules."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dagster as dg
import pandas as pd


def preview(rows: Sequence[dict[str, Any]], columns: Sequence[str], limit: int = 25) -> dg.MetadataValue:
    if not rows:
        return dg.MetadataValue.md("_none_")
    frame = pd.DataFrame([{c: r.get(c) for c in columns} for r in rows[:limit]], columns=list(columns))
    text = frame.to_markdown(index=False)
    if len(rows) > limit:
        text += f"\n\n… and {len(rows) - limit} more"
    return dg.MetadataValue.md(text)
