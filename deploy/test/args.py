"""Print the args of a workload's first container, one per line, with listen addresses moved to loopback.

usage: args.py KIND/NAME [+]KEY=VALUE... < render.yaml
KEY=VALUE replaces the value of flag --KEY, which must be there (e.g. listen-addr=127.0.0.1:18080), so the real
binary runs with exactly the flags the manifest gives it except where it listens; +KEY=VALUE replaces it or adds it.
"""

import sys

import yaml

kind, name = sys.argv[1].split("/")
replace = dict(arg.lstrip("+").split("=", 1) for arg in sys.argv[2:])
optional = {arg.lstrip("+").split("=", 1)[0] for arg in sys.argv[2:] if arg.startswith("+")}
for doc in yaml.safe_load_all(sys.stdin):
    if doc and doc["kind"] == kind and doc["metadata"]["name"] == name:
        args = doc["spec"]["template"]["spec"]["containers"][0]["args"]
        break
else:
    sys.exit(f"no {kind}/{name} in the render")
seen = set()
for arg in args:
    flag = arg.split("=", 1)[0].removeprefix("--")
    if flag in replace:
        arg = f"--{flag}={replace[flag]}"
        seen.add(flag)
    print(arg)
for flag in sorted(optional - seen):
    print(f"--{flag}={replace[flag]}")
if set(replace) - optional - seen:
    sys.exit(f"{kind}/{name} has no flag(s) {sorted(set(replace) - optional - seen)}")
