"""Certificates and CRLs speak UTC; refuse naive datetimes rather than guess their zone."""

from __future__ import annotations

import datetime as dt


def utc(moment: dt.datetime, what: str) -> dt.datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(dt.UTC)
