#!/usr/bin/env bash
# The Secrets the Kubernetes manifests mount, made on your machine (never
# committed, never in an image):
#
#   deployments/kubernetes/secrets.sh DIR NODE1,NODE2,...    # your node names (kubectl get nodes)
#   kubectl apply -f DIR/secrets.yaml                         # after the namespace exists
#
# DIR/secrets.yaml holds, in namespace $RINGWISE_NAMESPACE (default ringwise):
#   ringwise-nats          the authorization block (nats.conf) and the admin,
#                          enricher and analyzer nkey seeds (each pod projects
#                          only its own key)
#   ringwise-nats-sensors  one sensor seed per node, sensor-NODE.nk: the only
#                          Secret the sensor DaemonSet mounts
#   ringwise-nats-tls      the NATS servers' certificate and key, for the
#                          client port and the cluster routes (NATS only)
#   ringwise-nats-ca       the CA every service trusts (--nats-ca); its key
#                          is thrown away (deployments/tls/make-certs.sh)
#   ringwise-http-token    the analyzer's HTTP bearer token
#   ringwise-metrics-token the bearer token of the sensors' and enrichers'
#                          /metrics (give it to the Prometheus job that
#                          scrapes them: authorization.credentials_file)
# DIR also keeps the files they were made from (mode 0400/0444): delete it
# once applied, or keep it somewhere safe. A new node needs a new run (all
# identities change: apply, then restart the pods).
set -euo pipefail

[ $# -eq 2 ] || {
	echo "usage: $0 DIR NODE1,NODE2,..." >&2
	exit 2
}
dir=$1 nodes=$2
ns=${RINGWISE_NAMESPACE:-ringwise}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
rw=${RINGWISE_BIN:-$root/deployments/docker/bin/ringwise}
if [ ! -x "$rw" ]; then
	rw=$(command -v ringwise || true)
fi
[ -n "$rw" ] && [ -x "$rw" ] || {
	echo "secrets.sh: no ringwise binary: set RINGWISE_BIN, or run deployments/offline/prepare.sh binaries" >&2
	exit 1
}
[ ! -e "$dir/secrets.yaml" ] || {
	echo "secrets.sh: $dir/secrets.yaml exists; use a new DIR" >&2
	exit 1
}
mkdir -p "$dir"
chmod 0700 "$dir"
"$rw" nats --init-auth "$dir/nats" --nodes "$nodes" >/dev/null
# The names clients and routes use: the Service, and each StatefulSet pod
# under the headless Service nats-cluster (nats.conf's routes).
bash "$root/deployments/tls/make-certs.sh" "$dir/tls" nats "nats.$ns" "nats.$ns.svc" "nats.$ns.svc.cluster.local" \
	"*.nats-cluster.$ns.svc.cluster.local" "*.nats-cluster.$ns.svc" "*.nats-cluster"
(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/http-token")
(umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/metrics-token")

# secret NAME KEY=FILE...: one Secret as YAML (data base64, as the API wants).
secret() {
	local name=$1 kv
	shift
	printf -- '---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n  labels:\n    app.kubernetes.io/part-of: ringwise\ntype: Opaque\ndata:\n' "$name" "$ns"
	for kv in "$@"; do
		printf '  %s: %s\n' "${kv%%=*}" "$(base64 -w0 <"${kv#*=}")"
	done
}
{
	echo "# Made by deployments/kubernetes/secrets.sh for nodes $nodes: kubectl apply -f $dir/secrets.yaml"
	secret ringwise-nats nats.conf="$dir/nats/nats.conf" admin.nk="$dir/nats/admin.nk" \
		enricher.nk="$dir/nats/enricher.nk" analyzer.nk="$dir/nats/analyzer.nk"
	args=()
	for f in "$dir"/nats/sensor-*.nk; do args+=("$(basename "$f")=$f"); done
	secret ringwise-nats-sensors "${args[@]}"
	secret ringwise-nats-tls server-cert.pem="$dir/tls/server-cert.pem" server-key.pem="$dir/tls/server-key.pem"
	secret ringwise-nats-ca ca.pem="$dir/tls/ca.pem"
	secret ringwise-http-token token="$dir/http-token"
	secret ringwise-metrics-token token="$dir/metrics-token"
} >"$dir/secrets.yaml"
chmod 0400 "$dir/secrets.yaml"
echo "secrets.sh: wrote $dir/secrets.yaml (namespace $ns, sensors for $nodes): kubectl apply -f $dir/secrets.yaml" >&2
