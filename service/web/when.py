"""Times as people read them on the pages: "3 days ago"."""

from __future__ import annotations

from datetime import datetime


def ago(moment: datetime, now: datetime) -> str:
    """How long before ``now`` ``moment`` was, in the largest unit that fits: "just now",
    "5 minutes ago", "yesterday", "3 weeks ago", "2 years ago"."""
    seconds = (now - moment).total_seconds()
    if seconds < 60:
        return "just now"
    minutes = int(seconds // 60)
    if minutes < 60:
        return _count(minutes, "minute")
    hours = minutes // 60
    if hours < 24:
        return _count(hours, "hour")
    days = hours // 24
    if days == 1:
        return "yesterday"
    if days < 14:
        return f"{days} days ago"
    if days < 61:
        return _count(days // 7, "week")
    if days < 730:
        return _count(days * 12 // 365, "month")
    return _count(days // 365, "year")


def _count(n: int, unit: str) -> str:
    return f"{n} {unit} ago" if n == 1 else f"{n} {unit}s ago"
