{{/*
Shared pieces of the muster chart: labels, images, the names of the TLS
Secrets (cert-manager's or yours), DNS names, and the NATS JWT checks.
*/}}

{{- define "muster.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/part-of: muster
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "muster.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "muster.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{/* The Secret holding ca.crt, tls.crt, tls.key for a part: "head", "etcdServer", "etcdClient", "nats". */}}
{{- define "muster.tlsSecret" -}}
{{- if .root.Values.tls.certManager.enabled -}}
{{- get (dict "head" "muster-head-tls" "etcdServer" "muster-etcd-server-tls" "etcdClient" "muster-etcd-client-tls" "nats" "muster-nats-tls") .part -}}
{{- else -}}
{{- required (printf "tls.existingSecret.%s is required when tls.certManager.enabled is false" .part) (get .root.Values.tls.existingSecret .part) -}}
{{- end -}}
{{- end -}}

{{/* The cluster-local DNS suffix of a service: <svc>.<namespace>.svc */}}
{{- define "muster.svc" -}}
{{- printf "%s.%s.svc" .svc .root.Release.Namespace -}}
{{- end -}}

{{/* DNS names the heads' certificate must carry: the Service, and each pod's stable name (leader hints). */}}
{{- define "muster.headNames" -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list "muster-head" (printf "muster-head.%s" $ns) (printf "muster-head.%s.svc" $ns) -}}
{{- range $i := until (int .Values.head.replicas) -}}
{{- $names = append $names (printf "muster-head-%d.muster-head-peers.%s.svc" $i $ns) -}}
{{- end -}}
{{- toJson (concat $names .Values.tls.extraHeadNames) -}}
{{- end -}}

{{- define "muster.natsNames" -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list "muster-nats" (printf "muster-nats.%s" $ns) (printf "muster-nats.%s.svc" $ns) -}}
{{- range $i := until (int .Values.nats.replicas) -}}
{{- $names = append $names (printf "muster-nats-%d.muster-nats-cluster.%s.svc" $i $ns) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{- define "muster.etcdNames" -}}
{{- $ns := .Release.Namespace -}}
{{- $names := list "muster-etcd-client" (printf "muster-etcd-client.%s" $ns) (printf "muster-etcd-client.%s.svc" $ns) -}}
{{- range $i := until (int .Values.etcd.replicas) -}}
{{- $names = append $names (printf "muster-etcd-%d.muster-etcd.%s.svc" $i $ns) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/*
The claims of a NATS JWT (header.claims.signature, base64url without padding),
checked for the kind of key that signs it: { jwt, type ("operator" | "account"), what }.
Returns the subject (the public key) or fails naming the value.
*/}}
{{- define "muster.jwtSubject" -}}
{{- $parts := splitList "." (required (printf "%s is required: see docs/deploy.md, \"NATS accounts\"" .what) .jwt) -}}
{{- if ne (len $parts) 3 -}}
{{- fail (printf "%s is not a JWT (header.claims.signature)" .what) -}}
{{- else -}}
{{- $b := index $parts 1 | replace "-" "+" | replace "_" "/" -}}
{{- $pad := mod (len $b) 4 -}}
{{- if eq $pad 2 }}{{ $b = printf "%s==" $b }}{{ else if eq $pad 3 }}{{ $b = printf "%s=" $b }}{{ end -}}
{{- $claims := $b | b64dec | fromJson -}}
{{- $nats := get $claims "nats" | default dict -}}
{{- $sub := get $claims "sub" | toString -}}
{{- $prefix := ternary "O" "A" (eq .type "operator") -}}
{{- if ne (get $nats "type" | toString) .type -}}
{{- fail (printf "%s: the JWT's nats.type is %q, expected %q" .what (get $nats "type" | toString) .type) -}}
{{- else if not (regexMatch (printf "^%s[A-Z2-7]{55}$" $prefix) $sub) -}}
{{- fail (printf "%s: the JWT's subject %q is not an %s public key" .what $sub .type) -}}
{{- else -}}
{{- $sub -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* An object name for a node's DaemonSet or Certificate: node names may hold dots and run long. { prefix, node } */}}
{{- define "muster.nodeObjectName" -}}
{{- printf "%s-%s-%s" .prefix (.node | replace "." "-" | trunc 40 | trimSuffix "-") (sha256sum .node | trunc 6) -}}
{{- end -}}
