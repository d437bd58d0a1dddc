{{/*
Labels. The first three are the selector-free labels every object of deploy/ carries; Helm's standard ones
(helm.sh/chart, app.kubernetes.io/managed-by, instance, version) are added on top and are the only difference from
the Kustomize base (deploy/test.sh ignores exactly those). Selectors use name + component only, as the base does.
*/}}
{{- define "arcseal.selectorLabels" -}}
app.kubernetes.io/name: arcseal
app.kubernetes.io/component: {{ . }}
{{- end }}

{{- define "arcseal.labels" -}}
{{ include "arcseal.selectorLabels" .component }}
app.kubernetes.io/part-of: arcseal
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{- end }}

{{- define "arcseal.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The namespaces the unseal controller watches when namespaces.all is false: its own first. */}}
{{- define "arcseal.unsealNamespaces" -}}
{{- $list := list .Release.Namespace -}}
{{- range .Values.unseal.namespaces.additional -}}
{{- if not (has . $list) -}}{{- $list = append $list . -}}{{- end -}}
{{- end -}}
{{- join "," $list -}}
{{- end }}

{{/* Exactly what `arcseal-controller unseal` calls; see deploy/controller/rbac.yaml for the reason of each rule. */}}
{{- define "arcseal.unsealerRules" }}
rules:
  - apiGroups: ["bitnami.com"]
    resources: ["sealedsecrets"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["bitnami.com"]
    resources: ["sealedsecrets/status"]
    verbs: ["patch"]
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get", "list", "watch", "create", "update", "delete"]
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
{{- end }}
