"""Normalise `kubectl auth can-i --list` (stdin) to its resource rules, one per line, sorted.

Each line: `resource [resourceNames] [verbs]` with single spaces. Non-resource URLs (/healthz, /version, ...) come
from the server's default discovery roles, not from arcseal's RBAC, and vary across versions: dropped.
"""

import re
import sys

rules = set()
for line in sys.stdin.read().splitlines()[1:]:
    if not line or line[0].isspace():
        continue  # a non-resource URL rule: the Resources column is empty
    resource, _urls, names, verbs = re.split(r"\s{2,}|\s+(?=\[)", line.strip(), maxsplit=3)
    rules.add(f"{resource} {names} {verbs}")
print("\n".join(sorted(rules)))
