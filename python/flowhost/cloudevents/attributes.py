"""CloudEvents 1.0 attribute names and types: the checks of spec.md "Naming Conventions" and
"Type System", each raising `CloudEventError` with the attribute's name in its message."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from flowhost.errors import CloudEventError

REQUIRED: Final = ("specversion", "id", "source", "type")
OPTIONAL: Final = ("datacontenttype", "dataschema", "subject", "time")
CORE: Final = REQUIRED + OPTIONAL
SPECVERSION: Final = "1.0"

INTEGER_MIN: Final = -(2**31)
INTEGER_MAX: Final = 2**31 - 1

# Lower-case ASCII letters and digits. The spec's 20-character limit is a SHOULD NOT, so longer
# names are accepted.
_NAME = re.compile(r"[a-z0-9]+", re.ASCII)

# String: no control characters, no unpaired surrogates (a lone one is all Python can hold once
# JSON has joined the pairs), no Unicode noncharacters (U+FDD0..U+FDEF, U+xFFFE and U+xFFFF).
_NONCHARACTERS = "".join(
    f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17)
)
_DISALLOWED = re.compile(f"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef{_NONCHARACTERS}]")

# RFC 3986 (appendix A), as regular expressions over the ABNF's rules.
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_PCHAR = rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:@]|{_PCT})"
_SCHEME = r"[A-Za-z][A-Za-z0-9+\-.]*"
_AUTHORITY = (
    rf"(?:(?:[{_UNRESERVED}{_SUB_DELIMS}:]|{_PCT})*@)?"  # userinfo
    rf"(?:\[[{_UNRESERVED}{_SUB_DELIMS}:]+\]|(?:[{_UNRESERVED}{_SUB_DELIMS}]|{_PCT})*)"  # host
    r"(?::[0-9]*)?"  # port
)
_PATH_ABEMPTY = rf"(?:/{_PCHAR}*)*"
_PATH_ABSOLUTE = rf"/(?:{_PCHAR}+{_PATH_ABEMPTY})?"
_QUERY = rf"(?:{_PCHAR}|[/?])*"
_TAIL = rf"(?:\?{_QUERY})?(?:#{_QUERY})?"
_HIER_PART = rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}|{_PCHAR}+{_PATH_ABEMPTY}|)"
_RELATIVE_PART = (
    rf"(?://{_AUTHORITY}{_PATH_ABEMPTY}|{_PATH_ABSOLUTE}"
    rf"|(?:[{_UNRESERVED}{_SUB_DELIMS}@]|{_PCT})+{_PATH_ABEMPTY}|)"  # no ':' before the first '/'
)
_URI = re.compile(rf"{_SCHEME}:{_HIER_PART}{_TAIL}", re.ASCII)
_URI_REFERENCE = re.compile(rf"(?:{_SCHEME}:{_HIER_PART}|{_RELATIVE_PART}){_TAIL}", re.ASCII)

# RFC 3339 section 5.6 date-time; 'T' and 'Z' may be lower case (its note to section 5.6).
_TIMESTAMP = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)

# RFC 9110 section 8.3.1: type "/" subtype *( OWS ";" OWS [ parameter ] ).
_TOKEN = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QUOTED_STRING = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
_PARAMETER = rf"({_TOKEN})=({_TOKEN}|{_QUOTED_STRING})"
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})((?:[ \t]*;[ \t]*(?:{_PARAMETER})?)*)", re.ASCII)


def shown(value: object) -> str:
    """`value` for an error message, cut short: senders choose how long it is."""
    text = repr(value)
    return text if len(text) <= 80 else f"{text[:77]}..."


def check_name(name: object) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CloudEventError(
            f"attribute name {shown(name)} is not allowed: CloudEvents attribute names are "
            "lower-case letters a-z and digits 0-9 only",
            attribute=str(name),
        )
    if name == "data":
        raise CloudEventError("'data' is reserved and cannot be an attribute name", attribute=name)


def check_string(name: str, value: object, *, non_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise CloudEventError(f"{name}: expected a string, got {shown(value)}", attribute=name)
    if non_empty and not value:
        raise CloudEventError(f"{name}: must be a non-empty string", attribute=name)
    bad = _DISALLOWED.search(value)
    if bad:
        raise CloudEventError(
            f"{name}: the character U+{ord(bad.group()):04X} is not allowed in a CloudEvents "
            "String (control characters, unpaired surrogates and noncharacters are not)",
            attribute=name,
        )
    return value


def check_uri_reference(name: str, value: object) -> str:
    text = check_string(name, value, non_empty=True)
    if not _URI_REFERENCE.fullmatch(text):
        raise CloudEventError(
            f"{name}: {shown(text)} is not a URI-reference (RFC 3986)", attribute=name
        )
    return text


def check_uri(name: str, value: object) -> str:
    """An absolute URI: a scheme is required. A fragment is accepted, as the spec's own JSON
    schema (format "uri") accepts one."""
    text = check_string(name, value, non_empty=True)
    if not _URI.fullmatch(text):
        raise CloudEventError(
            f"{name}: {shown(text)} is not an absolute URI (RFC 3986, with a scheme)",
            attribute=name,
        )
    return text


def parse_timestamp(text: str) -> datetime:
    """An RFC 3339 timestamp as an aware datetime; raises `ValueError`. Digits past the
    microsecond are dropped, and a leap second (:60) becomes :59.999999."""
    match = _TIMESTAMP.fullmatch(text)
    if not match:
        raise ValueError(f"{text!r} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    if int(off_h or 0) > 23 or int(off_m or 0) > 59 or int(second) > 60:
        raise ValueError(f"{text!r} is out of range")
    offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
    zone = timezone(-offset if sign == "-" else offset) if sign else UTC
    leap = int(second) == 60
    return datetime(
        int(year),
        int(month),
        int(day),
        int(hour),
        int(minute),
        59 if leap else int(second),
        999_999 if leap else int((fraction or "0")[:6].ljust(6, "0")),
        tzinfo=zone,
    )


def check_timestamp(name: str, value: object) -> str:
    text = check_string(name, value, non_empty=True)
    try:
        parse_timestamp(text)
    except ValueError:
        raise CloudEventError(
            f"{name}: {shown(text)} is not an RFC 3339 timestamp "
            "(like 2018-04-05T17:31:00Z or 2018-04-05T19:31:00.5+02:00)",
            attribute=name,
        ) from None
    return text


def split_media_type(value: str) -> tuple[str, dict[str, str]] | None:
    """`("type/subtype", {parameter: value})`, names lower-cased, or None if `value` is not a
    media type."""
    match = _MEDIA_TYPE.fullmatch(value.strip(" \t"))
    if not match:
        return None
    parameters = {
        key.lower(): re.sub(r"\\(.)", r"\1", raw[1:-1]) if raw.startswith('"') else raw
        for key, raw in re.findall(_PARAMETER, match.group(3))
    }
    return f"{match.group(1)}/{match.group(2)}".lower(), parameters


def check_media_type(name: str, value: object) -> str:
    text = check_string(name, value)
    if split_media_type(text) is None:
        raise CloudEventError(
            f"{name}: {shown(text)} is not a media type (RFC 2046: type/subtype;parameter=value)",
            attribute=name,
        )
    return text


def is_json_media_type(value: str | None) -> bool:
    """Whether data of this content type is JSON: no content type (JSON is implied), `*/json`
    or `*/*+json` (json-format 3.1.1)."""
    if value is None:
        return True
    parts = split_media_type(value)
    subtype = parts[0].partition("/")[2] if parts else ""
    return subtype == "json" or subtype.endswith("+json")


def is_text_media_type(value: str) -> bool:
    """Whether a binary-mode body of this content type is text: `text/*`, XML, or any type
    that declares a charset."""
    parts = split_media_type(value)
    if parts is None:
        return False
    essence, parameters = parts
    subtype = essence.partition("/")[2]
    return (
        essence.startswith("text/")
        or subtype == "xml"
        or subtype.endswith("+xml")
        or ("charset" in parameters)
    )


def check_extension_value(name: str, value: object) -> str | int | bool:
    """An extension's value: a String, an Integer in the 32-bit range, or a Boolean. Binary,
    URI, URI-reference and Timestamp values travel as strings, so they are strings here."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not INTEGER_MIN <= value <= INTEGER_MAX:
            raise CloudEventError(
                f"{name}: {value} is out of the Integer range -2147483648..2147483647",
                attribute=name,
            )
        return value
    if isinstance(value, str):
        return check_string(name, value)
    raise CloudEventError(
        f"{name}: an attribute value is a string, a whole number or a boolean, not {shown(value)}",
        attribute=name,
    )
