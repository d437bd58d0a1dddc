#!/usr/bin/env bash
# deploy/monitoring with Prometheus' own tools (Debian's prometheus package: promtool):
#   1. prometheusrule.yaml and the Helm chart's copies are current (./generate --check)
#   2. promtool check rules --lint-fatal: the rules file parses (no duplicate rules), every expression and template is valid
#   3. promtool test rules: each alert fires and stays quiet on synthetic series (rules/arcseal.rules.test.yaml)
#   4. every dashboard query, with Grafana's $__rate_interval replaced, parsed by promtool as a recording rule
# Which metrics the expressions name is checked against the running binaries by tests/tests/monitoring.rs.
set -euo pipefail
cd "$(dirname "$0")"
log() { printf '    %s\n' "$*"; }
die() {
    printf 'deploy/monitoring/test.sh: FAILED: %s\n' "$*" >&2
    exit 1
}
if ! command -v promtool >/dev/null; then
    as_root() { if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
    as_root apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends prometheus >&2
fi
log "$(promtool --version 2>&1 | head -n 1)"

./generate --check || die "derived files are stale (above)"
log "prometheusrule.yaml and deploy/helm/arcseal/files/monitoring are current"

out=$(promtool check rules --lint-fatal rules/arcseal.rules.yaml 2>&1) || { echo "$out" >&2; die "promtool check rules"; }
log "promtool check rules: $(echo "$out" | grep -o '[0-9]* rules found')"
alerts=$(grep -c '^      - alert:' rules/arcseal.rules.yaml)
out=$(promtool test rules rules/arcseal.rules.test.yaml 2>&1) || { echo "$out" >&2; die "promtool test rules"; }
log "promtool test rules: SUCCESS ($(grep -c '^  - interval:' rules/arcseal.rules.test.yaml) test groups, $alerts alerts)"
# Every alert is tested both ways: expected to fire somewhere, and expected quiet (exp_alerts: []) somewhere.
missing=$(python3 - rules/arcseal.rules.yaml rules/arcseal.rules.test.yaml <<'PY'
import re, sys
alerts = re.findall(r"^\s+- alert: (\S+)", open(sys.argv[1]).read(), re.M)
tests = open(sys.argv[2]).read()
fires = set(re.findall(r"alertname: (\S+)\n\s+exp_alerts:\n\s+- exp_labels", tests))
quiet = set(re.findall(r"alertname: (\S+)\n\s+exp_alerts: \[\]", tests))
for a in alerts:
    if a not in fires: print(f"{a} never expected to fire")
    if a not in quiet: print(f"{a} never expected to stay quiet")
PY
)
[[ -z $missing ]] || die "untested alert behaviour: $missing"
log "every alert has a firing and a quiet case"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - dashboards/*.json >"$tmp/dashboards.rules.yaml" <<'PY'
import json, sys
print("groups:")
for path in sys.argv[1:]:
    d = json.load(open(path))
    print(f"  - name: {json.dumps(path)}\n    rules:")
    for p in d["panels"]:
        for t in p["targets"]:
            expr = t["expr"].replace("$__rate_interval", "1m")
            print(f"      - record: dashboard:{d['uid'].replace('-', '_')}_panel_{p['id']}_{t['refId']}\n        expr: {json.dumps(expr)}")
PY
out=$(promtool check rules --lint-fatal "$tmp/dashboards.rules.yaml" 2>&1) || { echo "$out" >&2; die "a dashboard query does not parse (above)"; }
log "dashboard queries parsed by promtool: $(echo "$out" | grep -o '[0-9]* rules found')"
