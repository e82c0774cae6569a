package deployments

// The Kubernetes manifests, decoded strictly into the k8s.io/api types (an
// unknown field, a wrong type or a duplicate key fails), and each
// workload's security context checked against what the service needs.

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const k8sDir = "kubernetes"

// strictJSON decodes data into v, refusing unknown fields and trailing data.
func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after the object")
	}
	return nil
}

// documents splits a multi-document YAML file and converts each document
// to JSON (YAMLToJSONStrict: a duplicate key fails).
func documents(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		j, err := yaml.YAMLToJSONStrict([]byte(doc))
		if err != nil {
			t.Fatalf("%s document %d: %v", path, i, err)
		}
		out = append(out, j)
	}
	return out
}

func stripComments(doc string) string {
	var b strings.Builder
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// kustomization mirrors the kustomize fields this directory uses (a
// field not listed here fails the strict decode).
type kustomization struct {
	APIVersion string   `json:"apiVersion"`
	Kind       string   `json:"kind"`
	Namespace  string   `json:"namespace"`
	Resources  []string `json:"resources"`
	Labels     []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors"`
	} `json:"labels"`
	ConfigMapGenerator []struct {
		Name  string   `json:"name"`
		Files []string `json:"files"`
	} `json:"configMapGenerator"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
	} `json:"images"`
}

// scaledObject mirrors KEDA's keda.sh/v1alpha1 ScaledObject (the fields of
// its API used here; KEDA's Go module is not imported for one type). The
// HPA behaviour is the autoscaling/v2 type KEDA embeds.
type scaledObject struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            struct {
		ScaleTargetRef struct {
			APIVersion string `json:"apiVersion,omitempty"`
			Kind       string `json:"kind,omitempty"`
			Name       string `json:"name"`
		} `json:"scaleTargetRef"`
		MinReplicaCount *int32 `json:"minReplicaCount,omitempty"`
		MaxReplicaCount *int32 `json:"maxReplicaCount,omitempty"`
		PollingInterval *int32 `json:"pollingInterval,omitempty"`
		CooldownPeriod  *int32 `json:"cooldownPeriod,omitempty"`
		Advanced        *struct {
			RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
			HorizontalPodAutoscalerConfig *struct {
				Name     string                                         `json:"name,omitempty"`
				Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
			} `json:"horizontalPodAutoscalerConfig,omitempty"`
		} `json:"advanced,omitempty"`
		Triggers []struct {
			Type       string `json:"type"`
			Name       string `json:"name,omitempty"`
			MetricType string `json:"metricType,omitempty"`
			// Metadata is a string map in the CRD; its keys are checked
			// against the scaler's own (prometheusTrigger) below.
			Metadata map[string]string `json:"metadata"`
		} `json:"triggers"`
	} `json:"spec"`
}

// prometheusTrigger is the metadata of KEDA's prometheus scaler
// (keda.sh/docs/scalers/prometheus), every key a string: a misspelt key
// (KEDA would ignore it) fails the strict decode.
type prometheusTrigger struct {
	ServerAddress       string `json:"serverAddress"`
	Query               string `json:"query"`
	Threshold           string `json:"threshold"`
	ActivationThreshold string `json:"activationThreshold,omitempty"`
	Namespace           string `json:"namespace,omitempty"`
	CustomHeaders       string `json:"customHeaders,omitempty"`
	IgnoreNullValues    string `json:"ignoreNullValues,omitempty"`
	QueryParameters     string `json:"queryParameters,omitempty"`
	UnsafeSsl           string `json:"unsafeSsl,omitempty"`
	Timeout             string `json:"timeout,omitempty"`
}

// workload is a decoded pod-bearing object.
type workload struct {
	kind, name string
	pod        corev1.PodSpec
}

func TestKubernetesManifests(t *testing.T) {
	var k kustomization
	kdocs := documents(t, filepath.Join(k8sDir, "kustomization.yaml"))
	if len(kdocs) != 1 {
		t.Fatalf("kustomization.yaml: %d documents", len(kdocs))
	}
	if err := strictJSON(kdocs[0], &k); err != nil {
		t.Fatalf("kustomization.yaml: %v", err)
	}
	// Every manifest is listed, and every listed one exists.
	files, _ := filepath.Glob(filepath.Join(k8sDir, "*.yaml"))
	var onDisk []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			onDisk = append(onDisk, b)
		}
	}
	listed := slices.Clone(k.Resources)
	sort.Strings(listed)
	sort.Strings(onDisk)
	if !slices.Equal(listed, onDisk) {
		t.Errorf("kustomization resources %v, manifests on disk %v", listed, onDisk)
	}
	for _, g := range k.ConfigMapGenerator {
		for _, f := range g.Files {
			if _, err := os.Stat(filepath.Join(k8sDir, f)); err != nil {
				t.Errorf("configMapGenerator %s: %v", g.Name, err)
			}
		}
	}

	var workloads []workload
	kinds := map[string]int{}
	var scaled []scaledObject
	for _, res := range k.Resources {
		path := filepath.Join(k8sDir, res)
		for i, doc := range documents(t, path) {
			var tm metav1.TypeMeta
			if err := json.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s document %d: %v", path, i, err)
			}
			where := fmt.Sprintf("%s document %d (%s)", res, i, tm.Kind)
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "v1 Namespace":
				obj = &corev1.Namespace{}
			case "v1 Service":
				obj = &corev1.Service{}
			case "v1 ConfigMap":
				obj = &corev1.ConfigMap{}
			case "apps/v1 Deployment":
				obj = &appsv1.Deployment{}
			case "apps/v1 StatefulSet":
				obj = &appsv1.StatefulSet{}
			case "apps/v1 DaemonSet":
				obj = &appsv1.DaemonSet{}
			case "keda.sh/v1alpha1 ScaledObject":
				obj = &scaledObject{}
			default:
				t.Errorf("%s: unexpected apiVersion/kind %q %q", where, tm.APIVersion, tm.Kind)
				continue
			}
			if err := strictJSON(doc, obj); err != nil {
				t.Errorf("%s: strict decode: %v", where, err)
				continue
			}
			kinds[tm.Kind]++
			switch o := obj.(type) {
			case *appsv1.Deployment:
				workloads = append(workloads, workload{"Deployment", o.Name, o.Spec.Template.Spec})
				checkSelector(t, where, o.Spec.Selector, o.Spec.Template.Labels)
			case *appsv1.StatefulSet:
				workloads = append(workloads, workload{"StatefulSet", o.Name, o.Spec.Template.Spec})
				checkSelector(t, where, o.Spec.Selector, o.Spec.Template.Labels)
				if o.Name == "nats" && (o.Spec.Replicas == nil || *o.Spec.Replicas != 3) {
					t.Errorf("%s: NATS needs 3 replicas for a JetStream cluster", where)
				}
			case *appsv1.DaemonSet:
				workloads = append(workloads, workload{"DaemonSet", o.Name, o.Spec.Template.Spec})
				checkSelector(t, where, o.Spec.Selector, o.Spec.Template.Labels)
			case *scaledObject:
				scaled = append(scaled, *o)
			}
		}
	}
	for kind, want := range map[string]int{"DaemonSet": 1, "Deployment": 3, "StatefulSet": 1, "ScaledObject": 1} {
		if kinds[kind] != want {
			t.Errorf("%d %s objects, want %d", kinds[kind], kind, want)
		}
	}
	names := map[string]bool{}
	for _, w := range workloads {
		names[w.kind+"/"+w.name] = true
		checkSecurity(t, w)
		checkSecrets(t, w)
	}
	checkNATSConfTLS(t)
	for _, want := range []string{"DaemonSet/sensor", "Deployment/enricher", "Deployment/analyzer", "StatefulSet/nats", "Deployment/jaeger"} {
		if !names[want] {
			t.Errorf("no %s", want)
		}
	}
	for _, so := range scaled {
		if so.Spec.ScaleTargetRef.Name != "enricher" {
			t.Errorf("ScaledObject %s scales %q, want the enricher Deployment", so.Metadata.Name, so.Spec.ScaleTargetRef.Name)
		}
		if so.Spec.MinReplicaCount == nil || so.Spec.MaxReplicaCount == nil || *so.Spec.MinReplicaCount < 1 || *so.Spec.MaxReplicaCount <= *so.Spec.MinReplicaCount {
			t.Errorf("ScaledObject %s: replica bounds %v..%v", so.Metadata.Name, so.Spec.MinReplicaCount, so.Spec.MaxReplicaCount)
		}
		if len(so.Spec.Triggers) != 1 || so.Spec.Triggers[0].Type != "prometheus" {
			t.Errorf("ScaledObject %s: want one prometheus trigger (consumer lag), got %+v", so.Metadata.Name, so.Spec.Triggers)
			continue
		}
		tr := so.Spec.Triggers[0]
		if tr.MetricType != "" && tr.MetricType != "AverageValue" {
			t.Errorf("ScaledObject %s: metricType %q: the threshold is per replica (AverageValue)", so.Metadata.Name, tr.MetricType)
		}
		checkLagTrigger(t, "ScaledObject "+so.Metadata.Name, tr.Metadata)
		if a := so.Spec.Advanced; a == nil || a.HorizontalPodAutoscalerConfig == nil || a.HorizontalPodAutoscalerConfig.Behavior == nil ||
			a.HorizontalPodAutoscalerConfig.Behavior.ScaleDown == nil || a.HorizontalPodAutoscalerConfig.Behavior.ScaleDown.StabilizationWindowSeconds == nil {
			t.Errorf("ScaledObject %s: no scale-down stabilization (every step moves leases)", so.Metadata.Name)
		}
	}
}

// checkLagTrigger: the prometheus trigger's metadata decodes strictly, its
// threshold is a positive number equal to the per-node clamp, and every
// series and label the query names is one the enricher exports (read from
// its source), with the label values the source gives.
func checkLagTrigger(t *testing.T, where string, md map[string]string) {
	t.Helper()
	raw, _ := json.Marshal(md)
	var p prometheusTrigger
	if err := strictJSON(raw, &p); err != nil {
		t.Errorf("%s: prometheus trigger metadata: %v", where, err)
		return
	}
	if !strings.HasPrefix(p.ServerAddress, "http://") && !strings.HasPrefix(p.ServerAddress, "https://") {
		t.Errorf("%s: serverAddress %q is not a URL", where, p.ServerAddress)
	}
	th, err := strconv.ParseFloat(p.Threshold, 64)
	if err != nil || th <= 0 {
		t.Errorf("%s: threshold %q: want a positive number", where, p.Threshold)
	}
	// One node counts for at most one enricher (a node has one reader).
	if m := regexp.MustCompile(`clamp_max\(.*,\s*([0-9.]+)\)`).FindStringSubmatch(p.Query); m == nil {
		t.Errorf("%s: query %q does not clamp each node's lag", where, p.Query)
	} else if c, _ := strconv.ParseFloat(m[1], 64); c != th {
		t.Errorf("%s: per-node clamp %s differs from the threshold %s: a node would count for more or less than one enricher", where, m[1], p.Threshold)
	}
	exported := enricherSeries(t)
	sel := regexp.MustCompile(`(ringwise_[a-z_]+)(\{([^}]*)\})?`)
	found := sel.FindAllStringSubmatch(p.Query, -1)
	if len(found) == 0 {
		t.Errorf("%s: query %q names no ringwise series", where, p.Query)
	}
	for _, m := range found {
		s := exported[m[1]]
		if s == nil {
			t.Errorf("%s: query names %s, which the enricher does not export (enricher/metrics.go has %v)", where, m[1], keys(exported))
			continue
		}
		if m[1] != "ringwise_enricher_lag" || s.kind != "gauge" {
			t.Errorf("%s: query reads %s (%s), want the lag gauge ringwise_enricher_lag", where, m[1], s.kind)
		}
		for _, mm := range regexp.MustCompile(`(\w+)\s*=\s*"([^"]*)"`).FindAllStringSubmatch(m[3], -1) {
			vals, ok := s.labels[mm[1]]
			if !ok {
				t.Errorf("%s: %s has no label %s (labels %v)", where, m[1], mm[1], s.labels)
			} else if !slices.Contains(vals, mm[2]) {
				t.Errorf("%s: %s{%s=%q}: the enricher sets %s to %v", where, m[1], mm[1], mm[2], mm[1], vals)
			}
		}
		for _, by := range regexp.MustCompile(`by\s*\(([^)]*)\)`).FindAllStringSubmatch(p.Query, -1) {
			for _, l := range strings.Split(by[1], ",") {
				if l = strings.TrimSpace(l); l != "" && s.labels[l] == nil {
					t.Errorf("%s: query groups by %s, which %s does not carry (labels %v)", where, l, m[1], s.labels)
				}
			}
		}
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// secretsOf is every Secret a workload may see, and from ringwise-nats
// (the admin's, enricher's and analyzer's seeds and the authorization
// block) the keys it may project. The server's TLS key goes to NATS only;
// the sensors' seeds (ringwise-nats-sensors) to the sensor only.
var secretsOf = map[string]map[string][]string{
	"StatefulSet/nats":    {"ringwise-nats": {"nats.conf", "admin.nk"}, "ringwise-nats-tls": nil, "ringwise-nats-ca": nil},
	"DaemonSet/sensor":    {"ringwise-nats-sensors": nil, "ringwise-nats-ca": nil, "ringwise-metrics-token": nil},
	"Deployment/enricher": {"ringwise-nats": {"enricher.nk"}, "ringwise-nats-ca": nil, "ringwise-metrics-token": nil},
	"Deployment/analyzer": {"ringwise-nats": {"analyzer.nk"}, "ringwise-nats-ca": nil, "ringwise-http-token": nil},
	"Deployment/jaeger":   {},
}

// checkSecrets: a workload mounts only the Secrets (and of ringwise-nats
// only the keys) it needs, and every ringwise service connects to NATS
// over TLS with --nats-ca pointing into a mounted ringwise-nats-ca.
func checkSecrets(t *testing.T, w workload) {
	t.Helper()
	where := w.kind + "/" + w.name
	allowed, ok := secretsOf[where]
	if !ok {
		t.Errorf("%s: no secret policy for this workload", where)
		return
	}
	secretVol := map[string]string{} // volume → a Secret it holds (ringwise-nats-ca wins)
	use := func(vol, name string, items []corev1.KeyToPath) {
		keys, ok := allowed[name]
		if !ok {
			t.Errorf("%s: volume %s mounts Secret %s, which this workload must not see", where, vol, name)
			return
		}
		if name == "ringwise-nats" {
			if len(items) == 0 {
				t.Errorf("%s: volume %s projects all of ringwise-nats (every service's seed); list the keys it needs: %v", where, vol, keys)
			}
			for _, it := range items {
				if !slices.Contains(keys, it.Key) {
					t.Errorf("%s: volume %s projects ringwise-nats key %s; allowed %v", where, vol, it.Key, keys)
				}
			}
		}
		if secretVol[vol] != "ringwise-nats-ca" {
			secretVol[vol] = name
		}
	}
	for _, v := range w.pod.Volumes {
		switch {
		case v.Secret != nil:
			use(v.Name, v.Secret.SecretName, v.Secret.Items)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret != nil {
					use(v.Name, src.Secret.Name, src.Secret.Items)
				}
			}
		}
	}
	for _, c := range w.pod.Containers {
		if !strings.HasPrefix(c.Image, "ringwise/ringwise") || c.Args[0] == "nats" {
			continue
		}
		cw := where + " container " + c.Name
		var url, ca string
		for _, a := range c.Args {
			if v, ok := strings.CutPrefix(a, "--nats="); ok {
				url = v
			}
			if v, ok := strings.CutPrefix(a, "--nats-ca="); ok {
				ca = v
			}
		}
		if !strings.HasPrefix(url, "tls://") {
			t.Errorf("%s: --nats=%q: want a tls:// URL", cw, url)
		}
		var caMounted bool
		for _, m := range c.VolumeMounts {
			if secretVol[m.Name] == "ringwise-nats-ca" && ca != "" && strings.HasPrefix(ca, strings.TrimSuffix(m.MountPath, "/")+"/") {
				caMounted = true
			}
		}
		if !caMounted {
			t.Errorf("%s: --nats-ca=%q is not in a mounted ringwise-nats-ca Secret", cw, ca)
		}
	}
}

// checkNATSConfTLS: the Kubernetes NATS config requires TLS of clients and
// of cluster routes, with the files the StatefulSet projects.
func checkNATSConfTLS(t *testing.T) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(k8sDir, "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := stripComments(string(b))
	cluster := strings.Index(conf, "cluster {")
	if cluster < 0 {
		t.Fatalf("nats.conf: no cluster block")
	}
	top, inCluster := conf[:cluster], conf[cluster:]
	for name, part := range map[string]string{"client port": top, "cluster routes": inCluster} {
		if !strings.Contains(part, "tls {") || !strings.Contains(part, `cert_file: "/etc/nats/tls/server-cert.pem"`) || !strings.Contains(part, `key_file: "/etc/nats/tls/server-key.pem"`) {
			t.Errorf("nats.conf: no TLS block with the projected certificate and key for the %s", name)
		}
	}
	if !strings.Contains(inCluster, `ca_file: "/etc/nats/tls/ca.pem"`) {
		t.Errorf("nats.conf: cluster TLS without the CA (routes verify each other)")
	}
}

func checkSelector(t *testing.T, where string, sel *metav1.LabelSelector, labels map[string]string) {
	t.Helper()
	if sel == nil || len(sel.MatchLabels) == 0 {
		t.Errorf("%s: no selector", where)
		return
	}
	for k, v := range sel.MatchLabels {
		if labels[k] != v {
			t.Errorf("%s: selector %s=%s does not match the pod template's labels %v", where, k, v, labels)
		}
	}
}

// checkSecurity: no workload is privileged, escalates, writes its root
// filesystem, keeps a capability it does not use or mounts the service
// account token; only the sensor runs as root, with exactly the
// capabilities BPF needs and read-only host paths.
func checkSecurity(t *testing.T, w workload) {
	t.Helper()
	where := w.kind + "/" + w.name
	p := w.pod
	if p.AutomountServiceAccountToken == nil || *p.AutomountServiceAccountToken {
		t.Errorf("%s: automountServiceAccountToken must be false (no pod talks to the API server)", where)
	}
	if p.HostPID || p.HostNetwork || p.HostIPC {
		t.Errorf("%s: host namespaces (pid %v, network %v, ipc %v)", where, p.HostPID, p.HostNetwork, p.HostIPC)
	}
	if p.SecurityContext == nil || p.SecurityContext.SeccompProfile == nil || p.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("%s: pod seccomp profile must be RuntimeDefault", where)
	}
	if len(p.Containers) == 0 {
		t.Errorf("%s: no containers", where)
	}
	sensor := w.kind == "DaemonSet" && w.name == "sensor"
	for _, c := range append(slices.Clone(p.InitContainers), p.Containers...) {
		cw := where + " container " + c.Name
		sc := c.SecurityContext
		if sc == nil {
			t.Errorf("%s: no securityContext", cw)
			continue
		}
		if sc.Privileged != nil && *sc.Privileged {
			t.Errorf("%s: privileged", cw)
		}
		if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
			t.Errorf("%s: allowPrivilegeEscalation must be false", cw)
		}
		if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			t.Errorf("%s: readOnlyRootFilesystem must be true", cw)
		}
		if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
			t.Errorf("%s: capabilities must drop ALL", cw)
		}
		if strings.HasPrefix(c.Image, "ringwise/ringwise") && !slices.ContainsFunc(c.Args, func(a string) bool {
			return strings.HasPrefix(a, "--nats-creds=") || strings.HasPrefix(a, "--admin-creds=")
		}) {
			t.Errorf("%s: connects to NATS without its own identity (--nats-creds)", cw)
		}
		var add []string
		if sc.Capabilities != nil {
			for _, c := range sc.Capabilities.Add {
				add = append(add, string(c))
			}
		}
		sort.Strings(add)
		if c.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: no memory limit", cw)
		}
		if !sensor {
			if len(add) > 0 {
				t.Errorf("%s: adds capabilities %v; only the sensor needs any", cw, add)
			}
			nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) ||
				(sc.RunAsNonRoot == nil && p.SecurityContext != nil && p.SecurityContext.RunAsNonRoot != nil && *p.SecurityContext.RunAsNonRoot)
			uid := sc.RunAsUser
			if uid == nil && p.SecurityContext != nil {
				uid = p.SecurityContext.RunAsUser
			}
			if !nonRoot || uid == nil || *uid == 0 {
				u := "unset"
				if uid != nil {
					u = fmt.Sprint(*uid)
				}
				t.Errorf("%s: must run as a non-root uid (runAsNonRoot %v, runAsUser %s)", cw, nonRoot, u)
			}
			continue
		}
		if want := []string{"BPF", "PERFMON", "SYS_PTRACE"}; !slices.Equal(add, want) {
			t.Errorf("%s: capabilities add %v, want exactly %v", cw, add, want)
		}
		// The node id is the Kubernetes node name, from the downward API.
		var nodeEnv bool
		for _, e := range c.Env {
			if e.Name == "NODE_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "spec.nodeName" {
				nodeEnv = true
			}
		}
		if !nodeEnv || !slices.Contains(c.Args, "--node=$(NODE_NAME)") {
			t.Errorf("%s: node id must come from spec.nodeName (env NODE_NAME, --node=$(NODE_NAME)); args %v", cw, c.Args)
		}
		// Host paths: only /proc and the BTF, read-only.
		host := map[string]string{}
		for _, v := range p.Volumes {
			if v.HostPath != nil {
				host[v.Name] = v.HostPath.Path
			}
		}
		for name, path := range host {
			if path != "/proc" && path != "/sys/kernel/btf" {
				t.Errorf("%s: host path %s (%s): only /proc and /sys/kernel/btf", cw, path, name)
			}
		}
		for _, m := range c.VolumeMounts {
			if _, ok := host[m.Name]; ok && !m.ReadOnly {
				t.Errorf("%s: host path %s mounted writable at %s", cw, host[m.Name], m.MountPath)
			}
		}
		if len(host) != 2 {
			t.Errorf("%s: host paths %v, want /proc and /sys/kernel/btf", cw, host)
		}
	}
}

// TestKubernetesSecrets runs deployments/kubernetes/secrets.sh and checks
// that what it writes is what the manifests mount: every Secret and key a
// pod references exists, each node has its sensor seed under the name the
// DaemonSet computes, and the NATS certificate verifies against the CA for
// the names clients and cluster routes dial.
func TestKubernetesSecrets(t *testing.T) {
	root := repoRoot(t)
	rw := filepath.Join(root, "deployments", "docker", "bin", "ringwise")
	if _, err := os.Stat(rw); err != nil {
		t.Skipf("no %s (deployments/offline/prepare.sh binaries builds it): secrets.sh needs 'ringwise nats --init-auth'", rw)
	}
	dir := filepath.Join(t.TempDir(), "secrets")
	nodes := []string{"node-a", "worker-2"}
	cmd := exec.Command("bash", filepath.Join(root, "deployments", "kubernetes", "secrets.sh"), dir, strings.Join(nodes, ","))
	cmd.Env = append(os.Environ(), "RINGWISE_BIN="+rw)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("secrets.sh: %v\n%s", err, out)
	}
	secrets := map[string]map[string][]byte{}
	for i, doc := range documents(t, filepath.Join(dir, "secrets.yaml")) {
		var s corev1.Secret
		if err := strictJSON(doc, &s); err != nil {
			t.Fatalf("secrets.yaml document %d: %v", i, err)
		}
		if s.Namespace != "ringwise" || s.Kind != "Secret" {
			t.Errorf("secret %s: kind %q namespace %q", s.Name, s.Kind, s.Namespace)
		}
		secrets[s.Name] = s.Data
	}
	// Every Secret (and listed key) a manifest mounts.
	for _, res := range []string{"nats.yaml", "sensor.yaml", "enricher.yaml", "analyzer.yaml"} {
		for _, doc := range documents(t, filepath.Join(k8sDir, res)) {
			var o struct {
				Kind string `json:"kind"`
				Spec struct {
					Template struct {
						Spec corev1.PodSpec `json:"spec"`
					} `json:"template"`
				} `json:"spec"`
			}
			if err := json.Unmarshal(doc, &o); err != nil || o.Kind == "Service" {
				continue
			}
			need := func(name string, items []corev1.KeyToPath) {
				data, ok := secrets[name]
				if !ok {
					t.Errorf("%s mounts Secret %s, which secrets.sh does not make", res, name)
					return
				}
				for _, it := range items {
					if len(data[it.Key]) == 0 {
						t.Errorf("%s projects %s key %s, absent or empty", res, name, it.Key)
					}
				}
			}
			for _, v := range o.Spec.Template.Spec.Volumes {
				if v.Secret != nil {
					need(v.Secret.SecretName, v.Secret.Items)
				}
				if v.Projected != nil {
					for _, src := range v.Projected.Sources {
						if src.Secret != nil {
							need(src.Secret.Name, src.Secret.Items)
						}
					}
				}
			}
		}
	}
	// The sensor reads /etc/ringwise/nats/sensor-$(NODE_NAME).nk.
	for _, n := range nodes {
		if len(secrets["ringwise-nats-sensors"]["sensor-"+n+".nk"]) == 0 {
			t.Errorf("ringwise-nats-sensors has no sensor-%s.nk (keys %v)", n, keys(secrets["ringwise-nats-sensors"]))
		}
	}
	if len(secrets["ringwise-nats-sensors"]) != len(nodes) {
		t.Errorf("ringwise-nats-sensors holds %v: only the sensors' seeds belong there", keys(secrets["ringwise-nats-sensors"]))
	}
	// The certificate, for the names the services and routes dial.
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(secrets["ringwise-nats-ca"]["ca.pem"]) {
		t.Fatal("ringwise-nats-ca: ca.pem is not a PEM certificate")
	}
	blk, _ := pem.Decode(secrets["ringwise-nats-tls"]["server-cert.pem"])
	if blk == nil {
		t.Fatal("ringwise-nats-tls: server-cert.pem is not PEM")
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"nats", "nats.ringwise.svc.cluster.local", "nats-0.nats-cluster.ringwise.svc.cluster.local", "nats-2.nats-cluster.ringwise.svc.cluster.local"} {
		for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
			if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
				t.Errorf("NATS certificate for %s (usage %v): %v", name, usage, err)
			}
		}
	}
	if kb, _ := pem.Decode(secrets["ringwise-nats-tls"]["server-key.pem"]); kb == nil || !strings.Contains(kb.Type, "PRIVATE KEY") {
		t.Errorf("ringwise-nats-tls: server-key.pem is not a PEM private key")
	}
	for name, data := range secrets {
		for k := range data {
			if strings.Contains(k, "ca-key") || (name != "ringwise-nats-tls" && strings.Contains(k, "key.pem")) {
				t.Errorf("Secret %s carries %s: only NATS gets a private key, and the CA's is discarded", name, k)
			}
		}
	}
}
