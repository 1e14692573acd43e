{{/* Labels on every object: the ones deploy/ sets plus Helm's. */}}
{{- define "edgepolicy.labels" -}}
app.kubernetes.io/part-of: edgepolicy
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{/* An image reference: by digest when one is given (the tag as a comment), else by tag.
     Call with (dict "image" IMAGE "tag" DEFAULT_TAG). */}}
{{- define "edgepolicy.image" -}}
{{- $tag := .image.tag | default .tag -}}
{{- if .image.digest -}}
{{ .image.repository }}@{{ .image.digest }}  # {{ $tag }}
{{- else -}}
{{ .image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{/* The webhook image. */}}
{{- define "edgepolicy.webhookImage" -}}
{{ include "edgepolicy.image" (dict "image" .Values.image "tag" .Chart.AppVersion) }}
{{- end }}

{{/* The namespaces never sent to the webhook: the configured ones plus the release namespace. */}}
{{- define "edgepolicy.excludedNamespaces" -}}
{{- append .Values.excludedNamespaces .Release.Namespace | uniq | toJson -}}
{{- end }}

{{/* The URL of the in-cluster bundle service. */}}
{{- define "edgepolicy.bundleServiceUrl" -}}
http://edgepolicy-bundles.{{ .Release.Namespace }}.svc:8080
{{- end }}

{{/* The OPA sidecar's configuration for the chosen bundle source (as deploy/base/opa-config.yaml
     for http and configmap; an OCI service for oci). */}}
{{- define "edgepolicy.opaConfig" -}}
{{- $bundle := .Values.bundle -}}
{{- $service := dict -}}
{{- $resource := $bundle.http.resource -}}
{{- $polling := dict "min_delay_seconds" $bundle.polling.minDelaySeconds "max_delay_seconds" $bundle.polling.maxDelaySeconds -}}
{{- if eq $bundle.source "oci" -}}
{{- $_ := set $service "url" (required "bundle.oci.registry is required when bundle.source is oci" $bundle.oci.registry) -}}
{{- $_ := set $service "type" "oci" -}}
{{- $resource = required "bundle.oci.reference is required when bundle.source is oci" $bundle.oci.reference -}}
{{- else -}}
{{- $_ := set $polling "long_polling_timeout_seconds" $bundle.polling.longPollingTimeoutSeconds -}}
{{- if eq $bundle.source "configmap" -}}
{{- $_ := set $service "url" (include "edgepolicy.bundleServiceUrl" .) -}}
{{- $resource = "edgepolicy.tar.gz" -}}
{{- else if eq $bundle.source "http" -}}
{{- $_ := set $service "url" ($bundle.http.url | default (include "edgepolicy.bundleServiceUrl" .)) -}}
{{- else -}}
{{- fail (printf "bundle.source: got %q, expected http, oci or configmap" $bundle.source) -}}
{{- end -}}
{{- end -}}
{{- if and $bundle.bearerTokenSecret (ne $bundle.source "configmap") -}}
{{- /* For type: oci OPA base64-encodes the token itself: the Secret holds user:password, sent as Basic (answers token challenges too). */ -}}
{{- $scheme := ternary "Basic" "Bearer" (eq $bundle.source "oci") -}}
{{- $_ := set $service "credentials" (dict "bearer" (dict "scheme" $scheme "token_path" "/etc/opa/credentials/token")) -}}
{{- end -}}
{{- $config := dict
  "services" (dict "bundles" $service)
  "bundles" (dict "edgepolicy" (dict
    "service" "bundles"
    "resource" $resource
    "persist" true
    "polling" $polling
    "signing" (dict "keyid" .Values.signing.keyId)))
  "keys" (dict .Values.signing.keyId (dict "algorithm" .Values.signing.algorithm))
  "persistence_directory" "/var/lib/opa"
  "status" (dict "prometheus" true) -}}
{{- toYaml $config -}}
{{- end }}
