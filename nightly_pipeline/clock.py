"""The pipeline's calendar: nights, partitions and daily caps are Singapore dates."""
from __future__ import annotations

import datetime as dt
import zoneinfo

TIMEZONE = "Asia/Singapore"
SINGAPORE = zoneinfo.ZoneInfo(TIMEZONE)


def today_in_singapore() -> dt.date:
    return dt.datetime.now(SINGAPORE).date()
