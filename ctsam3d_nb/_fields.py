"""The comments of a dataclass's fields, read from its source: the help text of the CLIs built from them."""
from __future__ import annotations

import inspect


def field_comments(cls) -> dict[str, str]:
    """``{field: comment}`` for each ``name: type = default  # comment`` line in ``cls``'s body; comment lines
    right below that start with ``#   `` (three spaces: a continuation) are joined to it."""
    out: dict[str, str] = {}
    last = None
    for line in inspect.getsource(cls).splitlines():
        s = line.strip()
        if last is not None and s.startswith("#   "):
            out[last] += " " + s[1:].strip()
            continue
        last = None
        if ":" in s and "#" in s and not s.startswith("#"):
            name = s.split(":")[0].strip()
            if name.isidentifier():
                out[name] = s.split("#", 1)[1].strip()
                last = name
    return out
