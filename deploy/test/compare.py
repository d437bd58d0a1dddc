"""Compare two renders of arcseal's install (Kustomize base vs Helm chart with default values).

Objects are matched by (apiVersion, kind, namespace, name) and compared as JSON with sorted keys, after removing
only Helm's standard labels (helm.sh/chart, app.kubernetes.io/managed-by, app.kubernetes.io/instance,
app.kubernetes.io/version) from metadata.labels and a pod template's labels. Anything else that differs, a
missing object or an extra one is drift: exit 1 with a unified diff per object.

usage: compare.py KUSTOMIZE.yaml HELM.yaml
"""

import difflib
import json
import sys

import yaml

HELM_LABELS = {
    "helm.sh/chart",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
}


def strip_helm_labels(meta):
    labels = (meta or {}).get("labels")
    if labels:
        for key in HELM_LABELS:
            labels.pop(key, None)


def load(path):
    objects = {}
    with open(path, encoding="utf-8") as f:
        for doc in yaml.safe_load_all(f):
            if not doc:
                continue
            meta = doc.get("metadata", {})
            key = (doc.get("apiVersion"), doc.get("kind"), meta.get("namespace", ""), meta.get("name"))
            if key in objects:
                sys.exit(f"{path}: {key} appears twice")
            strip_helm_labels(meta)
            template = (doc.get("spec") or {}).get("template")
            if isinstance(template, dict):
                strip_helm_labels(template.get("metadata"))
            objects[key] = doc
    return objects


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    left_path, right_path = sys.argv[1:]
    left, right = load(left_path), load(right_path)
    problems = 0
    for key in sorted(set(left) | set(right), key=str):
        name = "{1} {2}/{3} ({0})".format(*key)
        if key not in right:
            print(f"drift: {name} is only in {left_path}")
            problems += 1
        elif key not in left:
            print(f"drift: {name} is only in {right_path}")
            problems += 1
        else:
            a = json.dumps(left[key], sort_keys=True, indent=2).splitlines()
            b = json.dumps(right[key], sort_keys=True, indent=2).splitlines()
            if a != b:
                print(f"drift: {name} differs:")
                print("\n".join(difflib.unified_diff(a, b, left_path, right_path, lineterm="")))
                problems += 1
    if problems:
        print(f"{problems} object(s) differ between {left_path} and {right_path}")
        sys.exit(1)
    print(f"no drift: {len(left)} objects identical (Helm's standard labels ignored)")


if __name__ == "__main__":
    main()
