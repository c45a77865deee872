from __future__ import annotations

from enum import Enum
from typing import Iterable, List, Union


class EventType(str, Enum):
    """What initiated an event. On the wire the value is the name."""

    TYPE_UNSPECIFIED = "TYPE_UNSPECIFIED"
    """The producer did not say."""

    TYPE_API = "TYPE_API"
    """A user's API request."""

    TYPE_SYSTEM = "TYPE_SYSTEM"
    """A system action or automation."""


_BY_NUMBER = {0: EventType.TYPE_UNSPECIFIED, 1: EventType.TYPE_API, 2: EventType.TYPE_SYSTEM}


def event_type_to_json(value: Union[EventType, str]) -> str:
    """The wire name of an EventType (an EventType of another client, or a
    plain string naming one, is accepted too)."""
    name = value.value if isinstance(value, Enum) else value
    if not isinstance(name, str) or name not in EventType.__members__:
        raise ValueError(f"not an EventType: {value!r} (one of {', '.join(EventType.__members__)})")
    return name


def event_types_to_json(values: Iterable[Union[EventType, str]]) -> List[str]:
    return [event_type_to_json(v) for v in values]


def event_type_from_json(value: object) -> EventType:
    """An EventType from the wire: a name or, as protojson allows, a number.
    A value this client does not know reads as TYPE_UNSPECIFIED."""
    if isinstance(value, str) and value in EventType.__members__:
        return EventType(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return _BY_NUMBER.get(value, EventType.TYPE_UNSPECIFIED)
    return EventType.TYPE_UNSPECIFIED
