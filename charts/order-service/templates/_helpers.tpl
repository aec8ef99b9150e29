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

{{/* Labels that select one component's pods (.component: api, placer, redis...). */}}
{{- define "order-service.componentSelectorLabels" -}}
{{ include "order-service.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
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
{{/* One Dapr Configuration per app (.component), named as the app: their API allow-lists
differ. */}}
{{- define "order-service.daprConfig" -}}
{{- printf "%s-%s" (include "order-service.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}
{{/* The Secret whose key `token` is the Dapr API token (apps -> sidecars). */}}
{{- define "order-service.tokensSecret" -}}
{{- default (printf "%s-dapr-tokens" (include "order-service.fullname" .)) .Values.dapr.tokensSecret }}
{{- end }}
{{/* The Secret whose key `token` is the app token (placer's sidecar -> placer). */}}
{{- define "order-service.appTokenSecret" -}}
{{- default (printf "%s-dapr-app-token" (include "order-service.fullname" .)) .Values.dapr.appTokenSecret }}
{{- end }}

{{/* The Secret whose key `token` signs the orders the API publishes (API -> placer). */}}
{{- define "order-service.orderSigningKeySecret" -}}
{{- default (printf "%s-order-signing-key" (include "order-service.fullname" .)) .Values.orderSigningKeySecret }}
{{- end }}

{{/* The image of one app ("api" or "placer"): image.<app> when set, else built from the
repository and pinned by image.digest.<app> when set, else by the tag. */}}
{{- define "order-service.image" -}}
{{- $override := index .root.Values.image .app }}
{{- $digest := index (.root.Values.image.digest | default dict) .app }}
{{- if $override }}
{{- $override }}
{{- else if $digest }}
{{- printf "%s/order-%s@%s" .root.Values.image.repository .app $digest }}
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
- name: ORDER_SIGNING_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "order-service.orderSigningKeySecret" . }}
      key: token
{{- end }}

{{/* The placer's trimming of the topics' Redis streams (streamTrim): Redis as the sidecars
reach it, from the same Secret. */}}
{{- define "order-service.streamsEnv" -}}
{{- if .Values.streamTrim.enabled }}
- name: STREAMS_REDIS_HOST
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.secretName }}
      key: {{ .Values.redis.hostKey }}
- name: STREAMS_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.secretName }}
      key: {{ .Values.redis.passwordKey }}
{{- with .Values.redis.usernameKey }}
- name: STREAMS_REDIS_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $.Values.redis.secretName }}
      key: {{ . }}
{{- end }}
- name: STREAMS_REDIS_TLS
  value: {{ .Values.redis.enableTLS | quote }}
- name: STREAM_TRIM_INTERVAL_SECONDS
  value: {{ .Values.streamTrim.intervalSeconds | quote }}
- name: STREAM_TRIM_TIMEOUT_SECONDS
  value: {{ .Values.streamTrim.timeoutSeconds | quote }}
- name: STRANDED_CHECK_INTERVAL_SECONDS
  value: {{ .Values.strandedHandback.checkIntervalSeconds | quote }}
- name: STRANDED_AFTER_SECONDS
  value: {{ .Values.strandedHandback.afterSeconds | quote }}
{{- end }}
{{- end }}

{{/* Annotations that have the Dapr control plane inject and configure the sidecar of one
app (.component). */}}
{{- define "order-service.daprAnnotations" -}}
dapr.io/enabled: "true"
dapr.io/config: {{ include "order-service.daprConfig" . }}
dapr.io/log-level: {{ .root.Values.dapr.logLevel }}
dapr.io/log-as-json: "true"
dapr.io/enable-metrics: "true"
dapr.io/metrics-port: {{ .root.Values.dapr.metricsPort | quote }}
{{- /* The pods mount no Kubernetes API token, and the built-in Kubernetes secret store fails
without one (daprd would exit). The components' secretKeyRefs do not need it: the Dapr
operator resolves them. */}}
dapr.io/disable-builtin-k8s-secret-store: "true"
{{- /* No app health check: see docs/decisions/0007-no-app-health-check.md. */}}
dapr.io/api-token-secret: {{ include "order-service.tokensSecret" .root }}
dapr.io/graceful-shutdown-seconds: {{ .root.Values.dapr.gracefulShutdownSeconds | quote }}
{{- with .root.Values.dapr.blockShutdownSeconds }}
{{- /* The sidecar outlives the app's preStop sleep and drain: see order-service.shutdown. */}}
dapr.io/block-shutdown-duration: {{ printf "%ds" (int .) | quote }}
{{- end }}
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

{{/* How an app's pod stops, in its pod spec: a grace period that covers the sidecar's blocked
and graceful shutdown. On deletion the pod leaves the Service's endpoints while its app sleeps
out the preStop pause (order-service.preStop), then drains on SIGTERM; the sidecar, signalled
at once, stops its deliveries but keeps its API for dapr.blockShutdownSeconds, which must cover
the pause and the longest request (orderTimeoutSeconds). */}}
{{- define "order-service.shutdown" -}}
{{- $pause := int .Values.shutdown.preStopSleepSeconds }}
{{- $block := int .Values.dapr.blockShutdownSeconds }}
{{- $needed := add $pause (int (ceil .Values.orderTimeoutSeconds)) }}
{{- if and (gt $pause 0) (lt $block $needed) }}
{{- fail (printf "dapr.blockShutdownSeconds (%d) must be at least shutdown.preStopSleepSeconds + orderTimeoutSeconds (%d): the sidecar would stop while its app still serves" $block $needed) }}
{{- end -}}
terminationGracePeriodSeconds: {{ add $block .Values.dapr.gracefulShutdownSeconds 10 }}
{{- end }}

{{/* The app container's preStop pause (Kubernetes' sleep action: no binary in the image). */}}
{{- define "order-service.preStop" -}}
{{- with .Values.shutdown.preStopSleepSeconds }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ int . }}
{{- end }}
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

{{/* The Redis connection of a Dapr component, from the Secret named in values: host,
password, the ACL user when redis.usernameKey is set, TLS when redis.enableTLS. */}}
{{- define "order-service.redisMetadata" -}}
- name: redisHost
  secretKeyRef:
    name: {{ .Values.redis.secretName }}
    key: {{ .Values.redis.hostKey }}
{{- with .Values.redis.usernameKey }}
- name: redisUsername
  secretKeyRef:
    name: {{ $.Values.redis.secretName }}
    key: {{ . }}
{{- end }}
- name: redisPassword
  secretKeyRef:
    name: {{ .Values.redis.secretName }}
    key: {{ .Values.redis.passwordKey }}
{{- if .Values.redis.enableTLS }}
- name: enableTLS
  value: "true"
{{- end }}
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

{{/* Pod settings both apps share (.component: api or placer): service account without an
API token, security context, scheduling (priority, spread over nodes and zones, node
selection). */}}
{{- define "order-service.podSpec" -}}
{{- $values := index .root.Values .component -}}
serviceAccountName: {{ include "order-service.serviceAccountName" .root }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
# Neither app calls the Kubernetes API; the sidecar gets its own token for Dapr's sentry.
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with $values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- include "order-service.topologySpreadConstraints" (dict "root" $.root "component" $.component "constraints" .) | nindent 2 }}
{{- end }}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* The app's spread constraints (.constraints), each counting the app's own pods unless it
names a labelSelector of its own. */}}
{{- define "order-service.topologySpreadConstraints" -}}
{{- $selector := dict "matchLabels" (include "order-service.componentSelectorLabels" . | fromYaml) }}
{{- $constraints := list }}
{{- range .constraints }}
{{- $constraint := deepCopy . }}
{{- if not (hasKey $constraint "labelSelector") }}
{{- $_ := set $constraint "labelSelector" $selector }}
{{- end }}
{{- $constraints = append $constraints $constraint }}
{{- end }}
{{- toYaml $constraints }}
{{- end }}


{{/* The egress one app's pods (.component) need, besides the pod's loopback (app <-> sidecar),
which no policy touches. Ports: DNS 53; Dapr's sentry 50001, operator 6500, placement 50005,
scheduler 50006; the stores; the OTLP collector; the exchange stand-in (the placer). */}}
{{- define "order-service.egressRules" -}}
{{- $values := .root.Values }}
{{- $egress := $values.networkPolicy.egress -}}
# The cluster DNS.
- to:
    {{- toYaml $egress.dns | nindent 4 }}
  ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
# Dapr's control plane: certificates (sentry), components and configuration (operator),
# actors and jobs (placement, scheduler).
- to:
    {{- toYaml $egress.daprControlPlane | nindent 4 }}
  ports:
    {{- range $egress.daprControlPlanePorts }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
{{- $stores := dict "redis" $egress.redisPort }}
{{- if eq $values.stateStore.type "postgresql" }}
{{- $_ := set $stores "postgresql" $egress.postgresqlPort }}
{{- end }}
{{- if $values.devStores.enabled }}
# The development stores of this release.
{{- range $store, $port := $stores }}
- to:
    - podSelector:
        matchLabels:
          {{- include "order-service.componentSelectorLabels" (dict "root" $.root "component" $store) | nindent 10 }}
  ports:
    - port: {{ ternary 6379 5432 (eq $store "redis") }}
      protocol: TCP
{{- end }}
{{- else }}
# The stores (Redis{{ if hasKey $stores "postgresql" }}, PostgreSQL{{ end }}): at networkPolicy.egress.storeCIDRs, or anywhere.
- ports:
    {{- range $store, $port := $stores }}
    - port: {{ $port }}
      protocol: TCP
    {{- end }}
  {{- with $egress.storeCIDRs }}
  to:
    {{- range . }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
{{- end }}
{{- with $values.tracing.otlpEndpoint }}
# The OTLP collector that receives the traces.
- ports:
    - port: {{ splitList ":" . | last | atoi }}
      protocol: TCP
  {{- with $egress.otlpTo }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- if eq .component "placer" }}
{{ include "order-service.exchangeEgress" .root }}
{{- end }}
{{- with (index $values.networkPolicy .component).extraEgress }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* With devStores: an init container that waits until Redis and PostgreSQL accept
connections, so the sidecar's first start finds them (daprd exits when a component cannot
connect, and its restarts back off). The app's image, so nothing else is pulled. */}}
{{- define "order-service.waitForDevStores" -}}
{{- if .root.Values.devStores.enabled }}
{{- $fullname := include "order-service.fullname" .root }}
initContainers:
  - name: wait-for-stores
    image: {{ include "order-service.image" (dict "root" .root "app" .component) }}
    imagePullPolicy: {{ .root.Values.image.pullPolicy }}
    securityContext:
      {{- toYaml .root.Values.securityContext | nindent 6 }}
    command:
      - python
      - -c
      - |
        import socket, sys, time
        for address in sys.argv[1:]:
            host, port = address.rsplit(":", 1)
            while True:
                try:
                    socket.create_connection((host, int(port)), timeout=2).close()
                    break
                except OSError:
                    print(f"waiting for {address}", flush=True)
                    time.sleep(1)
      - {{ $fullname }}-redis:6379
      - {{ $fullname }}-postgresql:5432
    resources:
      {{- toYaml (index .root.Values .component).resources | nindent 6 }}
{{- end }}
{{- end }}

{{/*
Annotations or labels as Kubernetes takes them: every value a string, even one that `--set`
parsed as a number (`--set podAnnotations.rollout=20261130` would otherwise fail the install).
*/}}
{{- define "order-service.stringMap" -}}
{{- range $name, $value := . }}
{{ $name | quote }}: {{ $value | toString | quote }}
{{- end }}
{{- end }}
