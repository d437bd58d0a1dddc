"""Check the Flux objects of deploy/gitops-example against the files they point at.

usage: check_gitops.py GITOPS_ROOT REPO_ROOT RENDER.yaml...

The renders are `kubectl kustomize` of the example's directories. Every Flux Kustomization's path must be a
directory with a kustomization.yaml (relative to the config repository for sourceRef flux-system, which
`flux bootstrap` creates, or to arcseal's repository for sourceRef arcseal); every sourceRef and dependsOn must name an
object of the example; a HelmRelease built from Git must point at a chart directory. Exit 1 on any problem.
"""

import os
import sys

import yaml

SOURCES = {"flux-system"}  # made by `flux bootstrap`, not part of the example


def main():
    gitops_root, repo_root, renders = sys.argv[1], sys.argv[2], sys.argv[3:]
    objects = []
    for path in renders:
        with open(path, encoding="utf-8") as f:
            objects += [d for d in yaml.safe_load_all(f) if d]
    by_kind = {}
    for o in objects:
        by_kind.setdefault(o["kind"], set()).add(o["metadata"]["name"])
    sources = SOURCES | by_kind.get("GitRepository", set())
    problems = []
    checked = 0

    def base_of(source):
        return gitops_root if source == "flux-system" else repo_root

    for o in objects:
        api, kind, name = o["apiVersion"], o["kind"], o["metadata"]["name"]
        spec = o.get("spec", {})
        if api.startswith("kustomize.toolkit.fluxcd.io/"):
            ref = spec["sourceRef"]
            if ref["name"] not in sources:
                problems.append(f"Kustomization {name}: sourceRef {ref['name']} is not defined")
                continue
            target = os.path.normpath(os.path.join(base_of(ref["name"]), spec["path"]))
            if not os.path.isfile(os.path.join(target, "kustomization.yaml")):
                problems.append(f"Kustomization {name}: path {spec['path']} ({target}) has no kustomization.yaml")
            for dep in spec.get("dependsOn", []):
                if dep["name"] not in by_kind.get("Kustomization", set()):
                    problems.append(f"Kustomization {name}: dependsOn {dep['name']} is not defined")
            checked += 1
        elif api.startswith("helm.toolkit.fluxcd.io/"):
            chart = spec["chart"]["spec"]
            ref = chart["sourceRef"]
            if ref["kind"] == "GitRepository":
                if ref["name"] not in sources:
                    problems.append(f"HelmRelease {name}: sourceRef {ref['name']} is not defined")
                elif not os.path.isfile(os.path.join(base_of(ref["name"]), chart["chart"], "Chart.yaml")):
                    problems.append(f"HelmRelease {name}: {chart['chart']} is not a chart directory")
            elif ref["name"] not in by_kind.get(ref["kind"], set()):
                problems.append(f"HelmRelease {name}: {ref['kind']} {ref['name']} is not defined")
            checked += 1
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"{checked} Flux Kustomizations and HelmReleases: sources defined, paths and charts exist")


if __name__ == "__main__":
    main()
