"""Writes every shell step of the pipelines in ci/ to DIR as <pipeline>--<n>.sh, for shellcheck.

GitHub: `run:` of workflow and composite action steps; Azure Pipelines: `bash:` steps and the
`inlineScript` of AzureCLI@2 tasks. The pipelines keep expressions out of scripts (values come in
through `env:`), so each script is plain bash.
"""
import pathlib
import sys

from ruamel.yaml import YAML


def steps(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "steps" and isinstance(value, list):
                yield from (s for s in value if isinstance(s, dict))
            yield from steps(value)
    elif isinstance(node, list):
        for item in node:
            yield from steps(item)


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(pathlib.Path("ci").rglob("*.yml")):
        doc = YAML(typ="safe").load(path.read_text())
        for n, step in enumerate(steps(doc)):
            script = step.get("run") or step.get("bash") or (step.get("inputs") or {}).get("inlineScript")
            if not script:
                continue
            name = str(path).replace("/", "_")
            (out / f"{name}--{n}.sh").write_text("#!/usr/bin/env bash\n" + script)
            count += 1
    print(f"{count} shell steps extracted")


main(sys.argv[1])
