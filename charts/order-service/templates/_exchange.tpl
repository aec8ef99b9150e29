{{/* The shared exchange stand-in (exchange.enabled): its name, and what the placer needs to
reach it. */}}
{{- define "order-service.exchangeName" -}}
{{- printf "%s-exchange" (include "order-service.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels that select the stand-in's pod. */}}
{{- define "order-service.exchangeSelectorLabels" -}}
{{ include "order-service.selectorLabels" . }}
app.kubernetes.io/component: exchange
{{- end }}

{{/* The placer's settings for the shared stand-in; none when it is off (the placer then runs
the stand-in in its own process). */}}
{{- define "order-service.exchangeEnv" -}}
{{- if .Values.exchange.enabled -}}
- name: EXCHANGE_URL
  value: {{ printf "http://%s" (include "order-service.exchangeName" .) | quote }}
- name: EXCHANGE_TIMEOUT_SECONDS
  value: {{ .Values.exchange.timeoutSeconds | quote }}
{{- end }}
{{- end }}

{{/* The egress rule that lets the placer reach the stand-in, for a NetworkPolicy that limits
the placer's egress; none when the stand-in is off. */}}
{{- define "order-service.exchangeEgress" -}}
{{- if .Values.exchange.enabled -}}
- to:
    - podSelector:
        matchLabels:
          {{- include "order-service.exchangeSelectorLabels" . | nindent 10 }}
  ports:
    - port: {{ .Values.exchange.port }}
      protocol: TCP
{{- end }}
{{- end }}
