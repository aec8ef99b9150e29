{{/* The chart's name, or nameOverride. */}}
{{- define "order-service.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name, cut to the 63 characters Kubernetes names allow. */}}
{{- define "order-service.fullname" -}}
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

{{/* Chart name and version, for the helm.sh/chart label. */}}
{{- define "order-service.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "order-service.labels" -}}
helm.sh/chart: {{ include "order-service.chart" . }}
{{ include "order-service.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods. */}}
{{- define "order-service.selectorLabels" -}}
app.kubernetes.io/name: {{ include "order-service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The service account's name. */}}
{{- define "order-service.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "order-service.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Dapr app ids: also the Redis Streams consumer groups and the components' scopes. */}}
{{- define "order-service.apiAppId" -}}
{{- printf "%s-api" (include "order-service.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- define "order-service.placerAppId" -}}
{{- printf "%s-placer" (include "order-service.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Names of the Dapr resources, per release so two releases can share a namespace. */}}
{{- define "order-service.stateStore" -}}
{{- printf "%s-orderstore" (include "order-service.fullname" .) }}
{{- end }}
{{- define "order-service.placerStateStore" -}}
{{- printf "%s-orderstore-placer" (include "order-service.fullname" .) }}
{{- end }}
{{- define "order-service.pubsub" -}}
{{- printf "%s-orderpubsub" (include "order-service.fullname" .) }}
{{- end }}
{{- define "order-service.outboxPubsub" -}}
{{- printf "%s-outboxpubsub" (include "order-service.fullname" .) }}
{{- end }}
{{- define "order-service.outboxMarkerStore" -}}
{{- printf "%s-outbox-markers" (include "order-service.fullname" .) }}
{{- end }}
{{- define "order-service.daprConfig" -}}
{{- printf "%s-dapr" (include "order-service.fullname" .) }}
{{- end }}
{{- define "order-service.tokensSecret" -}}
{{- default (printf "%s-dapr-tokens" (include "order-service.fullname" .)) .Values.dapr.tokensSecret }}
{{- end }}

{{/* The image of one app ("api" or "placer"): image.<app> when set, else built from the
repository and tag. */}}
{{- define "order-service.image" -}}
{{- $override := index .root.Values.image .app }}
{{- if $override }}
{{- $override }}
{{- else }}
{{- printf "%s/order-%s:%s" .root.Values.image.repository .app (default .root.Chart.AppVersion .root.Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Settings both apps read: the Dapr names they must agree on with the components. */}}
{{- define "order-service.commonEnv" -}}
- name: STATE_STORE
  value: {{ include "order-service.stateStore" . | quote }}
- name: PLACER_STATE_STORE
  value: {{ include "order-service.placerStateStore" . | quote }}
- name: PUBSUB
  value: {{ include "order-service.pubsub" . | quote }}
- name: ORDERS_TOPIC
  value: orders
- name: DEAD_LETTER_TOPIC
  value: orders-deadletter
- name: LOG_LEVEL
  value: INFO
- name: LOG_FORMAT
  value: json
- name: METRICS_HOST
  value: 0.0.0.0
- name: API_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: PLACER_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: OTEL_TRACES_SAMPLER
  value: parentbased_traceidratio
- name: OTEL_TRACES_SAMPLER_ARG
  value: {{ .Values.tracing.samplingRate | quote }}
{{- with .Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ printf "http://%s" . | quote }}
{{- end }}
- name: ORDER_TIMEOUT_SECONDS
  value: {{ .Values.orderTimeoutSeconds | quote }}
- name: DAPR_API_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "order-service.tokensSecret" . }}
      key: token
{{- end }}

{{/* Annotations that have the Dapr control plane inject and configure the sidecar. */}}
{{- define "order-service.daprAnnotations" -}}
dapr.io/enabled: "true"
dapr.io/config: {{ include "order-service.daprConfig" .root }}
dapr.io/log-level: {{ .root.Values.dapr.logLevel }}
dapr.io/log-as-json: "true"
dapr.io/enable-metrics: "true"
{{- /* No app health check: see docs/decisions/0007-no-app-health-check.md. */}}
dapr.io/api-token-secret: {{ include "order-service.tokensSecret" .root }}
dapr.io/graceful-shutdown-seconds: {{ .root.Values.dapr.gracefulShutdownSeconds | quote }}
dapr.io/sidecar-cpu-request: {{ .root.Values.dapr.sidecar.cpuRequest | quote }}
dapr.io/sidecar-memory-request: {{ .root.Values.dapr.sidecar.memoryRequest | quote }}
dapr.io/sidecar-memory-limit: {{ .root.Values.dapr.sidecar.memoryLimit | quote }}
{{- end }}

{{/* Annotations for a Prometheus that finds pods to scrape by them. */}}
{{- define "order-service.metricsAnnotations" -}}
{{- if .Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* The container port of an app's metrics. */}}
{{- define "order-service.metricsPort" -}}
- name: metrics
  containerPort: {{ .Values.metrics.port }}
  protocol: TCP
{{- end }}

{{/* Probes of an app listening on `port`. */}}
{{- define "order-service.probes" -}}
livenessProbe:
  httpGet:
    path: /health/live
    port: http
  {{- toYaml .root.Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /health/ready
    port: http
  {{- toYaml .root.Values.probes.readiness | nindent 2 }}
{{- end }}

{{/* The Redis connection of a Dapr component, from the Secret named in values. */}}
{{- define "order-service.redisMetadata" -}}
- name: redisHost
  secretKeyRef:
    name: {{ .Values.redis.secretName }}
    key: {{ .Values.redis.hostKey }}
- name: redisPassword
  secretKeyRef:
    name: {{ .Values.redis.secretName }}
    key: {{ .Values.redis.passwordKey }}
{{- end }}

{{/* The state store's type, version, connection and key prefix (.keyPrefix). */}}
{{- define "order-service.stateStoreSpec" -}}
{{- with .root }}
{{- if eq .Values.stateStore.type "postgresql" }}
type: state.postgresql
version: v2
metadata:
  - name: connectionString
    secretKeyRef:
      name: {{ .Values.postgresql.secretName }}
      key: {{ .Values.postgresql.connectionStringKey }}
  - name: timeout
    value: "5s"
  - name: maxConns
    value: {{ .Values.postgresql.maxConns | quote }}
{{- else }}
type: state.redis
version: v1
metadata:
  {{- include "order-service.redisMetadata" . | nindent 2 }}
{{- end }}
{{- end }}
  - name: keyPrefix
    value: {{ .keyPrefix }}
{{- end }}

{{/* The NetworkPolicy rule that lets the scrapers reach the metrics port. */}}
{{- define "order-service.metricsIngress" -}}
- from:
    {{- toYaml .Values.metrics.scrapeFrom | nindent 4 }}
  ports:
    - port: {{ .Values.metrics.port }}
      protocol: TCP
{{- end }}
