# Compares the RECORD values of a peer tap with tap-postgres's, matched by key, and prints
# Markdown list items (run by `cargo xtask bench tap-postgres --peers`).
#
#   python3 -c "$(cat compare_records.py)" OURS.jsonl THEIRS.jsonl KEY
#
# Ours is the reference (exact): numbers compare by exact decimal value, strings as strings,
# date-times by instant (a date as midnight UTC), base64 bytes by the bytes. A value that is
# equal only once the peer's form is read (a date written as a date-time, hex instead of
# base64, JSON inside a string) is "the same value in another form"; anything else differs.
import base64
import binascii
import datetime
import decimal
import json
import sys

ours_path, theirs_path, key = sys.argv[1], sys.argv[2], sys.argv[3]


def load(path):
    properties, records = {}, {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            msg = json.loads(line, parse_float=decimal.Decimal, parse_int=decimal.Decimal)
            if msg.get("type") == "SCHEMA":
                properties = msg["schema"].get("properties", {})
            elif msg.get("type") == "RECORD":
                records[str(msg["record"][key])] = msg["record"]
    return properties, records


def same(a, b):
    """Equal JSON values, numbers by exact decimal value (never a boolean for a number)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, decimal.Decimal) and isinstance(b, decimal.Decimal):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def instant(v):
    if not isinstance(v, str):
        return None
    try:
        t = datetime.datetime.fromisoformat(v)
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.timezone.utc)
    return t


def as_bytes(v):
    if not isinstance(v, str):
        return None
    text = v[2:] if v.startswith("\\x") else v
    try:
        return bytes.fromhex(text)
    except ValueError:
        pass
    try:
        return base64.b64decode(v, validate=True)
    except (binascii.Error, ValueError):
        return None


def same_in_other_form(prop, ours, theirs):
    fmt = prop.get("format")
    if fmt in ("date", "date-time"):
        a, b = instant(ours), instant(theirs)
        return a is not None and a == b
    if prop.get("contentEncoding") == "base64" and isinstance(ours, str):
        b = as_bytes(theirs)
        return b is not None and base64.b64decode(ours) == b
    if isinstance(theirs, str) and not isinstance(ours, str):
        try:
            parsed = json.loads(theirs, parse_float=decimal.Decimal, parse_int=decimal.Decimal)
        except ValueError:
            return False
        return same(ours, parsed)
    return False


def show(v):
    if isinstance(v, decimal.Decimal):
        text = str(v)
    elif isinstance(v, list):
        text = "[" + ",".join(show(x) for x in v) + "]"
    elif isinstance(v, dict):
        text = "{" + ",".join(json.dumps(k) + ":" + show(x) for k, x in v.items()) + "}"
    else:
        text = json.dumps(v, ensure_ascii=False)
    text = text.replace("`", "'").replace("|", "\\|")
    return text if len(text) <= 90 else text[:87] + "..."


properties, ours = load(ours_path)
_, theirs = load(theirs_path)
both = [k for k in ours if k in theirs]
only_ours = len(ours) - len(both)
only_theirs = len([k for k in theirs if k not in ours])
print(
    f"- records: ours {len(ours)}, theirs {len(theirs)}; matched by `{key}`: {len(both)}"
    + (f"; **missing from theirs: {only_ours}**" if only_ours else "")
    + (f"; **not in ours: {only_theirs}**" if only_theirs else "")
)
identical = []
for column, prop in properties.items():
    counts = {"identical": 0, "other form": 0, "differs": 0, "absent": 0}
    example = {}
    for k in both:
        a, record = ours[k].get(column), theirs[k]
        if column not in record:
            kind = "absent"
        elif same(a, record[column]):
            kind = "identical"
        elif same_in_other_form(prop, a, record[column]):
            kind = "other form"
        else:
            kind = "differs"
        counts[kind] += 1
        if kind not in ("identical", "absent") and kind not in example:
            example[kind] = f"{key} {k}: ours `{show(a)}`, theirs `{show(record[column])}`"
    if counts["identical"] == len(both):
        identical.append(column)
        continue
    parts = []
    if counts["absent"] == len(both):
        parts.append("**not emitted**")
    elif counts["absent"]:
        parts.append(f"**absent from {counts['absent']} records**")
    if counts["differs"]:
        parts.append(f"**differs in {counts['differs']} records**, e.g. {example['differs']}")
    if counts["other form"]:
        parts.append(
            f"the same value in another form in {counts['other form']} records, e.g. "
            + example["other form"]
        )
    if counts["identical"]:
        parts.append(f"identical in {counts['identical']}")
    print(f"- `{column}`: " + "; ".join(parts))
extra = sorted({c for k in both for c in theirs[k] if c not in properties})
if extra:
    print("- columns only theirs emit: " + ", ".join(f"`{c}`" for c in extra))
print("- identical in every record: " + (", ".join(f"`{c}`" for c in identical) or "none"))
