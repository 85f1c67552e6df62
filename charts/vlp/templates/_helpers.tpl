{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "vlp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: <release>-<chart> unless the release name already contains the chart
name. Truncated so that component suffixes still fit in 63 characters.
*/}}
{{- define "vlp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 50 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "vlp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Standard labels on every resource.
*/}}
{{- define "vlp.labels" -}}
helm.sh/chart: {{ include "vlp.chart" . }}
{{ include "vlp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vlp
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: stable across upgrades, so never the version.
*/}}
{{- define "vlp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vlp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one component. Call with (dict "ctx" $ "component" "mlflow").
*/}}
{{- define "vlp.componentLabels" -}}
{{ include "vlp.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "vlp.componentSelectorLabels" -}}
{{ include "vlp.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Names of the components. */}}
{{- define "vlp.mlflow.fullname" -}}
{{- printf "%s-mlflow" (include "vlp.fullname" .) }}
{{- end }}

{{- define "vlp.postgresql.fullname" -}}
{{- printf "%s-postgresql" (include "vlp.fullname" .) }}
{{- end }}

{{- define "vlp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (printf "%s-pipeline" (include "vlp.fullname" .)) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Container security context shared by every container: non-root, read-only root filesystem,
no privilege escalation, no capabilities, the runtime's default seccomp profile.
*/}}
{{- define "vlp.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "vlp.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The vlp image written into the cluster profile. */}}
{{- define "vlp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "vlp.mlflow.image" -}}
{{- printf "%s:%s" .Values.mlflow.image.repository .Values.mlflow.image.tag }}
{{- end }}

{{/* PostgreSQL host: the bundled service or the external server. */}}
{{- define "vlp.postgresql.host" -}}
{{- if .Values.postgresql.bundled.enabled }}
{{- include "vlp.postgresql.fullname" . }}
{{- else }}
{{- required "postgresql.host is required when postgresql.bundled.enabled is false" .Values.postgresql.host }}
{{- end }}
{{- end }}

{{/*
SQLAlchemy URI of one database on the PostgreSQL server. It carries no credentials: libpq reads
PGUSER and PGPASSWORD from the environment (set from the Secret), so no password ever appears in
an argument, a log line or a rendered manifest. Call with (dict "ctx" $ "database" "mlflow").
*/}}
{{- define "vlp.postgresql.uri" -}}
{{- $pg := .ctx.Values.postgresql }}
{{- $uri := printf "postgresql://%s:%d/%s" (include "vlp.postgresql.host" .ctx) (int $pg.port) .database }}
{{- if $pg.sslMode }}
{{- $uri = printf "%s?sslmode=%s" $uri $pg.sslMode }}
{{- end }}
{{- $uri }}
{{- end }}

{{- define "vlp.mlflow.backendStoreUri" -}}
{{- include "vlp.postgresql.uri" (dict "ctx" . "database" .Values.postgresql.database) }}
{{- end }}

{{- define "vlp.mlflow.artifactsDestination" -}}
{{- $prefix := trimAll "/" .Values.s3.prefix }}
{{- if $prefix }}
{{- printf "s3://%s/%s" .Values.s3.bucket $prefix }}
{{- else }}
{{- printf "s3://%s" .Values.s3.bucket }}
{{- end }}
{{- end }}

{{/* In-cluster URL of the MLflow service. */}}
{{- define "vlp.mlflow.serviceHost" -}}
{{- printf "%s.%s.svc.%s" (include "vlp.mlflow.fullname" .) .Release.Namespace .Values.clusterDomain }}
{{- end }}

{{- define "vlp.mlflow.trackingUri" -}}
{{- printf "http://%s:%d" (include "vlp.mlflow.serviceHost" .) (int .Values.mlflow.service.port) }}
{{- end }}

{{/*
Host header patterns MLflow accepts (its DNS-rebinding guard): the service's names, loopback for
probes and port-forwards, the ingress host, and whatever the values add.
*/}}
{{- define "vlp.mlflow.allowedHosts" -}}
{{- $svc := include "vlp.mlflow.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list "localhost" "localhost:*" "127.0.0.1" "127.0.0.1:*" }}
{{- range $name := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (include "vlp.mlflow.serviceHost" .) }}
{{- $hosts = append $hosts $name }}
{{- $hosts = append $hosts (printf "%s:*" $name) }}
{{- end }}
{{- if .Values.mlflow.ingress.enabled }}
{{- $hosts = append $hosts .Values.mlflow.ingress.host }}
{{- $hosts = append $hosts (printf "%s:*" .Values.mlflow.ingress.host) }}
{{- end }}
{{- $hosts = concat $hosts .Values.mlflow.allowedHosts }}
{{- join "," (uniq $hosts) }}
{{- end }}

{{- define "vlp.mlflow.corsAllowedOrigins" -}}
{{- $origins := list }}
{{- if .Values.mlflow.ingress.enabled }}
{{- $scheme := ternary "https" "http" .Values.mlflow.ingress.tls.enabled }}
{{- $origins = append $origins (printf "%s://%s" $scheme .Values.mlflow.ingress.host) }}
{{- end }}
{{- $origins = concat $origins .Values.mlflow.corsAllowedOrigins }}
{{- join "," (uniq $origins) }}
{{- end }}

{{/*
Environment shared by the MLflow server and the gc job: database login and S3 credentials, all
from existing Secrets.
*/}}
{{- define "vlp.mlflow.storeEnv" -}}
- name: PGUSER
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgresql.auth.existingSecret | quote }}
      key: {{ .Values.postgresql.auth.usernameKey | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgresql.auth.existingSecret | quote }}
      key: {{ .Values.postgresql.auth.passwordKey | quote }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.existingSecret | quote }}
      key: {{ .Values.s3.accessKeyIdKey | quote }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.s3.existingSecret | quote }}
      key: {{ .Values.s3.secretAccessKeyKey | quote }}
{{- with .Values.s3.endpointUrl }}
- name: AWS_ENDPOINT_URL
  value: {{ . | quote }}
- name: MLFLOW_S3_ENDPOINT_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.s3.region }}
- name: AWS_DEFAULT_REGION
  value: {{ . | quote }}
{{- end }}
- name: HOME
  value: /tmp
- name: PYTHONDONTWRITEBYTECODE
  value: "1"
{{- end }}

{{/* Queue name of a team. Call with (dict "ctx" $ "team" $team). */}}
{{- define "vlp.queueName" -}}
{{- $name := printf "%s%s" .ctx.Values.queueNamePrefix .team.name | trunc 63 | trimSuffix "-" }}
{{- if eq $name "default" }}
{{- fail "queue name \"default\" belongs to Volcano itself: rename the team or set queueNamePrefix" }}
{{- end }}
{{- $name }}
{{- end }}
