"""Print the objects of a multi-document YAML stream (stdin) whose kind, or Kind/name, is in argv."""

import sys

import yaml

wanted = set(sys.argv[1:])
selected = [
    doc
    for doc in yaml.safe_load_all(sys.stdin)
    if doc and (doc["kind"] in wanted or f'{doc["kind"]}/{doc["metadata"]["name"]}' in wanted)
]
yaml.safe_dump_all(selected, sys.stdout, sort_keys=False)
