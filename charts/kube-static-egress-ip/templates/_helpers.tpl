{{/*
Shared pieces of the kube-static-egress-ip templates. Object names, selectors and pod templates
are those of the kustomize base (k8s/base), so the chart and `kubectl apply -k k8s/` describe
the same objects and one can replace the other.
*/}}

{{/* Metadata labels: the component's (as in k8s/base) plus Helm's standard ones. */}}
{{- define "kseip.labels" -}}
app.kubernetes.io/name: kseip-{{ .component }}
app.kubernetes.io/component: {{ .component }}
{{ include "kseip.commonLabels" .root }}
{{- end }}

{{/* Labels of every object, component or not. */}}
{{- define "kseip.commonLabels" -}}
app.kubernetes.io/part-of: kube-static-egress-ip
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "kseip.image" -}}
image: {{ printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) | quote }}
{{- with .Values.image.pullPolicy }}
imagePullPolicy: {{ . }}
{{- end }}
{{- end }}

{{/* The Kafka Secret's non-secret keys as variables; the password stays a file. */}}
{{- define "kseip.kafkaSecretEnv" -}}
{{- $secret := .Values.kafka.security.secretName -}}
- name: KSEIP_KAFKA_TLS
  valueFrom: { secretKeyRef: { name: {{ $secret }}, key: tls, optional: true } }
- name: KSEIP_KAFKA_SASL_MECHANISM
  valueFrom: { secretKeyRef: { name: {{ $secret }}, key: sasl-mechanism, optional: true } }
- name: KSEIP_KAFKA_SASL_USERNAME
  valueFrom: { secretKeyRef: { name: {{ $secret }}, key: sasl-username, optional: true } }
{{- end }}

{{- define "kseip.kafkaSecretMount" -}}
- { name: kafka-secret, mountPath: {{ .Values.kafka.security.mountPath }}, readOnly: true }
{{- end }}

{{- define "kseip.kafkaSecretVolume" -}}
- name: kafka-secret
  secret: { secretName: {{ .Values.kafka.security.secretName }}, optional: true }
{{- end }}

{{- define "kseip.probes" -}}
livenessProbe:
  httpGet: { path: /healthz, port: health }
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet: { path: /readyz, port: health }
  periodSeconds: 5
{{- end }}

{{/*
A control-plane Deployment. Argument: a dict with root (the chart context), component (name
suffix, e.g. watcher), script (its entry point), values (its values block), replicas, lease
("pod": the watcher's POD_NAMESPACE; "env": KSEIP_LEASE_NAMESPACE/NAME; "": none), usesApi
(false: no ServiceAccount token) and strategy (optional).
*/}}
{{- define "kseip.controlPlaneDeployment" -}}
{{- $root := .root -}}
{{- $v := .values -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: kseip-{{ .component }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kseip.labels" (dict "component" .component "root" $root) | nindent 4 }}
spec:
  replicas: {{ .replicas }}
  {{- with .strategy }}
  strategy: {{ toJson . }}
  {{- end }}
  selector:
    matchLabels: { app.kubernetes.io/name: kseip-{{ .component }} }
  template:
    metadata:
      labels: { app.kubernetes.io/name: kseip-{{ .component }}, app.kubernetes.io/component: {{ .component }} }
    spec:
      serviceAccountName: kseip-{{ .component }}
      {{- if not .usesApi }}
      automountServiceAccountToken: false
      {{- end }}
      terminationGracePeriodSeconds: 30
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets: {{ toJson . }}
      {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector: {{ toJson . }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations: {{ toJson . }}
      {{- end }}
      containers:
        - name: {{ .component }}
          {{- include "kseip.image" $root | nindent 10 }}
          command: [node, {{ .script }}]
          envFrom:
            - configMapRef: { name: kseip-config }
          env:
            {{- if eq .lease "pod" }}
            - name: POD_NAMESPACE
              valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
            {{- else if eq .lease "env" }}
            - name: KSEIP_LEASE_NAMESPACE
              valueFrom: { fieldRef: { fieldPath: metadata.namespace } }
            - { name: KSEIP_LEASE_NAME, value: kseip-{{ .component }} }
            {{- end }}
            {{- if .lease }}
            - name: POD_NAME
              valueFrom: { fieldRef: { fieldPath: metadata.name } }
            {{- end }}
            - { name: KSEIP_HEALTH_PORT, value: {{ $v.healthPort | quote }} }
            {{- include "kseip.kafkaSecretEnv" $root | nindent 12 }}
          ports:
            - { name: health, containerPort: {{ $v.healthPort }} }
          {{- include "kseip.probes" $root | nindent 10 }}
          securityContext:
            runAsNonRoot: true
            runAsUser: 1000
            runAsGroup: 1000
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: { drop: [ALL] }
            seccompProfile: { type: RuntimeDefault }
          volumeMounts:
            {{- include "kseip.kafkaSecretMount" $root | nindent 12 }}
          resources: {{ toJson $v.resources }}
      volumes:
        {{- include "kseip.kafkaSecretVolume" $root | nindent 8 }}
{{- end }}

{{/* A component's ServiceAccount. Argument: dict root, component, usesApi. */}}
{{- define "kseip.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: kseip-{{ .component }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kseip.commonLabels" .root | nindent 4 }}
{{- if not .usesApi }}
automountServiceAccountToken: false
{{- end }}
{{- end }}

{{/*
Leader election on the Lease kseip-<component> in the release namespace: `create` on leases
cannot be narrowed by name (the name is not known before the object exists), so it is a rule of
its own; reading and renewing are limited to the one Lease. Argument: dict root, component.
*/}}
{{- define "kseip.leaseRbac" -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: kseip-{{ .component }}-lease
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kseip.commonLabels" .root | nindent 4 }}
rules:
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    verbs: [create]
  - apiGroups: [coordination.k8s.io]
    resources: [leases]
    resourceNames: [kseip-{{ .component }}]
    verbs: [get, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: kseip-{{ .component }}-lease
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kseip.commonLabels" .root | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: kseip-{{ .component }}-lease
subjects:
  - kind: ServiceAccount
    name: kseip-{{ .component }}
    namespace: {{ .root.Release.Namespace }}
{{- end }}

{{/* A ClusterRoleBinding of the ClusterRole kseip-<component> to its ServiceAccount. */}}
{{- define "kseip.clusterRoleBinding" -}}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: kseip-{{ .component }}
  labels:
    {{- include "kseip.commonLabels" .root | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: kseip-{{ .component }}
subjects:
  - kind: ServiceAccount
    name: kseip-{{ .component }}
    namespace: {{ .root.Release.Namespace }}
{{- end }}
