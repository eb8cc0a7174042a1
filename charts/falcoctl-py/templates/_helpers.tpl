{{/* The chart's name. */}}
{{- define "falcoctl-py.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: release-chart, or the release alone when it holds the chart's name. */}}
{{- define "falcoctl-py.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "falcoctl-py.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride }}
{{- end }}

{{- define "falcoctl-py.selectorLabels" -}}
app.kubernetes.io/name: {{ include "falcoctl-py.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "falcoctl-py.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "falcoctl-py.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "falcoctl-py.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "falcoctl-py.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "falcoctl-py.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.registry -}}
{{ .Values.image.registry }}/{{ .Values.image.repository }}:{{ $tag }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}

{{/* falco.yaml: the falco values, with the engine chosen by driver.enabled. */}}
{{- define "falcoctl-py.falcoYaml" -}}
{{- $falco := deepCopy .Values.falco -}}
{{- if not .Values.driver.enabled -}}
{{- $_ := set $falco "engine" (dict "kind" "nodriver") -}}
{{- end -}}
{{ toYaml $falco }}
{{- end }}

{{/* falcoctl.yaml: the falcoctl.config values, plus the credential store when a Secret is named. */}}
{{- define "falcoctl-py.falcoctlYaml" -}}
{{- $config := deepCopy .Values.falcoctl.config -}}
{{- if .Values.falcoctl.registryCredentials.existingSecret -}}
{{- $registry := get $config "registry" | default dict -}}
{{- $_ := set $registry "creds" (dict "config" "/etc/falcoctl-creds/config.json") -}}
{{- $_ := set $config "registry" $registry -}}
{{- end -}}
{{ toYaml $config }}
{{- end }}

{{/* The mounts the init container and the sidecar share. */}}
{{- define "falcoctl-py.artifactMounts" -}}
- name: rulesfiles-install-dir
  mountPath: {{ .Values.falcoctl.config.artifact.install.rulesfilesDir }}
- name: plugins-install-dir
  mountPath: {{ .Values.falcoctl.config.artifact.install.pluginsDir }}
- name: artifact-state-dir
  mountPath: {{ .Values.falcoctl.config.artifact.install.stateDir }}
- name: falcoctl-config
  mountPath: /etc/falcoctl
  readOnly: true
{{- if .Values.falcoctl.registryCredentials.existingSecret }}
- name: registry-credentials
  mountPath: /etc/falcoctl-creds
  readOnly: true
{{- end }}
{{- end }}

{{- define "falcoctl-py.webPort" -}}
{{- .Values.falco.webserver.listen_port | default 8765 }}
{{- end }}

{{- define "falcoctl-py.probe" -}}
httpGet:
  path: {{ .root.Values.falco.webserver.k8s_healthz_endpoint | default "/healthz" }}
  port: web
  {{- if .root.Values.falco.webserver.ssl_enabled }}
  scheme: HTTPS
  {{- end }}
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
periodSeconds: {{ .probe.periodSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{- define "falcoctl-py.socketVolumeName" -}}
{{- printf "socket-%s" (. | trimPrefix "/" | replace "/" "-" | replace "." "-" | replace "_" "-") | trunc 63 | trimSuffix "-" }}
{{- end }}
