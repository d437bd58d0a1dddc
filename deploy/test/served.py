"""Split a multi-document YAML stream by whether the API server serves each object's apiVersion.

stdin: the objects; argv[1]: `kubectl api-versions` output. Served objects go to stdout (YAML), the others are
named on stderr one per line ("Kind/name (apiVersion)"), so the caller can say what it did not dry-run.
"""

import sys

import yaml

served_versions = set(open(sys.argv[1], encoding="utf-8").read().split())
served = []
for doc in yaml.safe_load_all(sys.stdin):
    if not doc:
        continue
    if doc["apiVersion"] in served_versions:
        served.append(doc)
    else:
        print(f'{doc["kind"]}/{doc["metadata"]["name"]} ({doc["apiVersion"]})', file=sys.stderr)
yaml.safe_dump_all(served, sys.stdout, sort_keys=False)
