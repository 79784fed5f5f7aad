package deploy

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// The image every container runs; its entrypoint is /usr/bin/quiver.
const image = "ghcr.io/quiverdata/quiver"

// Quiver serve's defaults after SIGTERM: answer on while not ready for
// serve.drain_delay, then drain the requests in flight for up to
// serve.shutdown_timeout (docs/security.md).
const (
	defaultDrainDelay      = 0
	defaultShutdownTimeout = 10 * time.Second
)

// rendering is one kustomization's output, every object decoded strictly
// into its Kubernetes API type.
type rendering struct {
	dir          string
	deployments  map[string]*appsv1.Deployment
	services     map[string]*corev1.Service
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret
	accounts     map[string]*corev1.ServiceAccount
	claims       map[string]*corev1.PersistentVolumeClaim
	hpas         map[string]*autoscalingv2.HorizontalPodAutoscaler
	pdbs         map[string]*policyv1.PodDisruptionBudget
	cronJobs     map[string]*batchv1.CronJob
	jobs         map[string]*batchv1.Job
	namespace    string
	configByName map[string]string // ConfigMap name (as rendered, with its hash) → its quiver.yaml
}

// decoder decodes YAML strictly (unknown or duplicate fields are errors)
// into the types of the API groups the manifests use; any other kind is
// an error.
func decoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		autoscalingv2.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	return json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme, json.SerializerOptions{Yaml: true, Strict: true})
}

// render builds the kustomization in dir with kustomize's own API, as
// kubectl kustomize does.
func render(t *testing.T, dir string) *rendering {
	t.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	resMap, err := k.Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	r := &rendering{dir: dir,
		deployments: map[string]*appsv1.Deployment{}, services: map[string]*corev1.Service{},
		configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{},
		accounts: map[string]*corev1.ServiceAccount{}, claims: map[string]*corev1.PersistentVolumeClaim{},
		hpas: map[string]*autoscalingv2.HorizontalPodAutoscaler{}, pdbs: map[string]*policyv1.PodDisruptionBudget{},
		cronJobs: map[string]*batchv1.CronJob{}, jobs: map[string]*batchv1.Job{}, configByName: map[string]string{},
	}
	dec := decoder(t)
	namespaces := map[string]bool{}
	for _, res := range resMap.Resources() {
		data, err := res.AsYAML()
		if err != nil {
			t.Fatalf("%s: %s: %v", dir, res.CurId(), err)
		}
		obj, _, err := dec.Decode(data, nil, nil)
		if err != nil {
			t.Errorf("%s: %s %s: %v", dir, res.GetKind(), res.GetName(), err)
			continue
		}
		meta, ok := obj.(metav1.Object)
		if !ok {
			t.Fatalf("%s: %T has no metadata", dir, obj)
		}
		namespaces[meta.GetNamespace()] = true
		switch o := obj.(type) {
		case *appsv1.Deployment:
			r.deployments[o.Name] = o
		case *corev1.Service:
			r.services[o.Name] = o
		case *corev1.ConfigMap:
			r.configMaps[o.Name] = o
			if cfg, ok := o.Data["quiver.yaml"]; ok {
				r.configByName[o.Name] = cfg
			}
		case *corev1.Secret:
			r.secrets[o.Name] = o
		case *corev1.ServiceAccount:
			r.accounts[o.Name] = o
		case *corev1.PersistentVolumeClaim:
			r.claims[o.Name] = o
		case *autoscalingv2.HorizontalPodAutoscaler:
			r.hpas[o.Name] = o
		case *policyv1.PodDisruptionBudget:
			r.pdbs[o.Name] = o
		case *batchv1.CronJob:
			r.cronJobs[o.Name] = o
		case *batchv1.Job:
			r.jobs[o.Name] = o
		default:
			t.Errorf("%s: %s %s: a kind these tests do not check", dir, res.GetKind(), res.GetName())
		}
	}
	if len(namespaces) != 1 {
		t.Errorf("%s: objects in %d namespaces, want one", dir, len(namespaces))
	}
	for ns := range namespaces {
		r.namespace = ns
	}
	return r
}

// pod is a pod template of the rendering and where it is.
type pod struct {
	where  string
	labels map[string]string
	spec   *corev1.PodSpec
}

func (r *rendering) pods() []pod {
	var out []pod
	for _, d := range r.deployments {
		out = append(out, pod{"Deployment " + d.Name, d.Spec.Template.Labels, &d.Spec.Template.Spec})
	}
	for _, c := range r.cronJobs {
		out = append(out, pod{"CronJob " + c.Name, c.Spec.JobTemplate.Spec.Template.Labels, &c.Spec.JobTemplate.Spec.Template.Spec})
	}
	for _, j := range r.jobs {
		out = append(out, pod{"Job " + j.Name, j.Spec.Template.Labels, &j.Spec.Template.Spec})
	}
	slices.SortFunc(out, func(a, b pod) int { return strings.Compare(a.where, b.where) })
	return out
}

// quiverConfig is the part of quiver.yaml these tests read.
type quiverConfig struct {
	Online struct {
		Type string `json:"type"`
		Addr string `json:"addr"`
	} `json:"online"`
	Serve struct {
		GRPC            string `json:"grpc"`
		HTTP            string `json:"http"`
		Flight          string `json:"flight"`
		AuthToken       string `json:"auth_token"`
		DrainDelay      string `json:"drain_delay"`
		ShutdownTimeout string `json:"shutdown_timeout"`
	} `json:"serve"`
}

// podConfig is the quiver.yaml a pod mounts (from a ConfigMap volume or
// a projected volume), parsed.
func (r *rendering) podConfig(t *testing.T, p pod) quiverConfig {
	t.Helper()
	var names []string
	for _, v := range p.spec.Volumes {
		if v.ConfigMap != nil {
			names = append(names, v.ConfigMap.Name)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					names = append(names, s.ConfigMap.Name)
				}
			}
		}
	}
	var cfg quiverConfig
	found := 0
	for _, n := range names {
		if data, ok := r.configByName[n]; ok {
			found++
			if err := yaml.Unmarshal([]byte(data), &cfg); err != nil {
				t.Fatalf("%s: %s: quiver.yaml of ConfigMap %s: %v", r.dir, p.where, n, err)
			}
		}
	}
	if found != 1 {
		t.Fatalf("%s: %s mounts %d quiver.yaml files, want 1", r.dir, p.where, found)
	}
	return cfg
}

func TestBase(t *testing.T) {
	r := render(t, "base")
	checkCommon(t, r)
	checkServe(t, r, "serve")
	checkStream(t, r)
	checkScaling(t, r)
	requireKinds(t, r, 1, 1, 1)
}

func TestDev(t *testing.T) {
	r := render(t, "overlays/dev")
	checkCommon(t, r)
	checkServe(t, r, "dev")
	if len(r.hpas) != 0 || len(r.pdbs) != 0 {
		t.Errorf("dev: %d autoscalers, %d disruption budgets; the embedded store allows one process, so none", len(r.hpas), len(r.pdbs))
	}
	if len(r.deployments) != 1 || len(r.cronJobs) != 0 || len(r.jobs) != 0 {
		t.Errorf("dev: %d Deployments, %d CronJobs, %d Jobs; want only quiver dev's", len(r.deployments), len(r.cronJobs), len(r.jobs))
	}
	d := r.deployments["quiver-serve"]
	if d == nil {
		t.Fatal("dev: no quiver-serve Deployment")
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("dev: quiver-serve replicas %v, want 1", d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		t.Errorf("dev: strategy %s, want Recreate (the old pod lets go of the embedded store first)", d.Spec.Strategy.Type)
	}
	p := pod{"Deployment quiver-serve", d.Spec.Template.Labels, &d.Spec.Template.Spec}
	cfg := r.podConfig(t, p)
	if cfg.Online.Type != "embedded" || cfg.Online.Addr != "" {
		t.Errorf("dev: online store %q at %q, want embedded", cfg.Online.Type, cfg.Online.Addr)
	}
	for _, cm := range r.configMaps {
		for k, v := range cm.Data {
			if strings.Contains(strings.ToLower(k+v), "redis") {
				t.Errorf("dev: ConfigMap %s key %s names Redis", cm.Name, k)
			}
		}
	}
	for _, c := range allContainers(p.spec) {
		for _, e := range c.Env {
			if strings.Contains(e.Name, "REDIS") {
				t.Errorf("dev: container %s has %s", c.Name, e.Name)
			}
		}
	}
	if len(r.claims) != 1 {
		t.Errorf("dev: %d PersistentVolumeClaims, want 1 (the repository directory)", len(r.claims))
	}
	requireKinds(t, r, 1, 0, 0)
}

func TestProd(t *testing.T) {
	r := render(t, "overlays/prod")
	checkCommon(t, r)
	checkServe(t, r, "serve")
	checkStream(t, r)
	checkScaling(t, r)
	requireKinds(t, r, 1, 1, 1)
	d := r.deployments["quiver-serve"]
	if *d.Spec.Replicas < 3 {
		t.Errorf("prod: quiver-serve replicas %d, want >= 3", *d.Spec.Replicas)
	}
	spec := d.Spec.Template.Spec
	if len(spec.TopologySpreadConstraints) == 0 || spec.Affinity == nil || spec.Affinity.PodAntiAffinity == nil {
		t.Error("prod: quiver-serve is neither spread over zones nor kept apart on nodes")
	}
	if h := r.hpas["quiver-serve"]; h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 3 {
		t.Error("prod: the autoscaler's minReplicas is under 3")
	}
	for _, p := range r.pods() {
		cfg := r.podConfig(t, p)
		if cfg.Online.Type != "redis" || cfg.Online.Addr != "${QUIVER_REDIS_ADDR}" {
			t.Errorf("prod: %s: online store %q at %q, want redis at ${QUIVER_REDIS_ADDR}", p.where, cfg.Online.Type, cfg.Online.Addr)
		}
		if addr := r.env(t, p, "QUIVER_REDIS_ADDR"); addr == "" {
			t.Errorf("prod: %s: QUIVER_REDIS_ADDR is not set", p.where)
		} else if _, _, err := net.SplitHostPort(addr); err != nil {
			t.Errorf("prod: %s: QUIVER_REDIS_ADDR %q: %v", p.where, addr, err)
		}
	}
}

// requireKinds checks that the rendering has the stream Deployment, the
// materialize CronJob and the apply Job as expected.
func requireKinds(t *testing.T, r *rendering, serve, stream, batch int) {
	t.Helper()
	if got := len(r.deployments); got != serve+stream {
		t.Errorf("%s: %d Deployments, want %d", r.dir, got, serve+stream)
	}
	if len(r.cronJobs) != batch || len(r.jobs) != batch {
		t.Errorf("%s: %d CronJobs and %d Jobs, want %d each", r.dir, len(r.cronJobs), len(r.jobs), batch)
	}
}

// env is the value a pod's first container gets for name, from env or
// from an envFrom ConfigMap ("" when unset).
func (r *rendering) env(t *testing.T, p pod, name string) string {
	t.Helper()
	c := p.spec.Containers[0]
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	for _, from := range c.EnvFrom {
		if from.ConfigMapRef != nil {
			if cm := r.configMaps[from.ConfigMapRef.Name]; cm != nil {
				if v, ok := cm.Data[name]; ok {
					return v
				}
			}
		}
	}
	return ""
}

func allContainers(spec *corev1.PodSpec) []corev1.Container {
	return append(slices.Clone(spec.InitContainers), spec.Containers...)
}

// checkCommon checks every pod: image, resources, security, and that
// every ConfigMap, Secret, claim and service account it names is in the
// rendering; and that no token is committed.
func checkCommon(t *testing.T, r *rendering) {
	t.Helper()
	pods := r.pods()
	if len(pods) == 0 {
		t.Fatalf("%s: no pods", r.dir)
	}
	for _, p := range pods {
		where := r.dir + ": " + p.where
		sc := p.spec.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != 65532 {
			t.Errorf("%s: the pod must run as non-root uid 65532 (the image's user)", where)
		}
		if p.spec.ServiceAccountName == "" || r.accounts[p.spec.ServiceAccountName] == nil {
			t.Errorf("%s: service account %q is not in the rendering", where, p.spec.ServiceAccountName)
		}
		if p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken {
			t.Errorf("%s: mounts a Kubernetes API token it does not need", where)
		}
		if p.labels["app.kubernetes.io/component"] == "" || p.labels["app.kubernetes.io/name"] != "quiver" {
			t.Errorf("%s: labels %v lack app.kubernetes.io/name=quiver and a component", where, p.labels)
		}
		for _, c := range allContainers(p.spec) {
			cw := where + ": container " + c.Name
			name, tag, ok := strings.Cut(c.Image, ":")
			if name != image || !ok || tag == "" {
				t.Errorf("%s: image %q, want %s:TAG", cw, c.Image, image)
			}
			if len(c.Command) != 0 {
				t.Errorf("%s: sets command %v; the image's entrypoint is quiver, give args", cw, c.Command)
			}
			if len(c.Args) == 0 {
				t.Errorf("%s: no quiver command in args", cw)
			}
			req, lim := c.Resources.Requests, c.Resources.Limits
			if req.Cpu().IsZero() || req.Memory().IsZero() || lim.Memory().IsZero() {
				t.Errorf("%s: resources %v: want cpu and memory requests and a memory limit", cw, c.Resources)
			} else if lim.Memory().Cmp(*req.Memory()) < 0 {
				t.Errorf("%s: memory limit under its request", cw)
			}
			csc := c.SecurityContext
			if csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
				csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation ||
				csc.Capabilities == nil || !slices.Contains(csc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: want a read-only root file system, no privilege escalation, all capabilities dropped", cw)
			}
			for _, m := range c.VolumeMounts {
				if !slices.ContainsFunc(p.spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name }) {
					t.Errorf("%s: mounts volume %s, which the pod does not have", cw, m.Name)
				}
			}
			for _, e := range c.EnvFrom {
				if e.ConfigMapRef != nil {
					r.requireConfigMap(t, cw, e.ConfigMapRef.Name, "")
				}
				if e.SecretRef != nil {
					r.requireSecret(t, cw, e.SecretRef.Name, "")
				}
			}
			for _, e := range c.Env {
				if e.ValueFrom == nil {
					continue
				}
				if ref := e.ValueFrom.ConfigMapKeyRef; ref != nil {
					r.requireConfigMap(t, cw, ref.Name, ref.Key)
				}
				if ref := e.ValueFrom.SecretKeyRef; ref != nil {
					r.requireSecret(t, cw, ref.Name, ref.Key)
				}
			}
		}
		for _, v := range p.spec.Volumes {
			switch {
			case v.ConfigMap != nil:
				r.requireConfigMap(t, where, v.ConfigMap.Name, "")
			case v.Secret != nil:
				r.requireSecret(t, where, v.Secret.SecretName, "")
			case v.Projected != nil:
				for _, s := range v.Projected.Sources {
					if s.ConfigMap != nil {
						r.requireConfigMap(t, where, s.ConfigMap.Name, "")
					}
					if s.Secret != nil {
						r.requireSecret(t, where, s.Secret.Name, "")
					}
				}
			case v.PersistentVolumeClaim != nil:
				if r.claims[v.PersistentVolumeClaim.ClaimName] == nil {
					t.Errorf("%s: claim %s is not in the rendering", where, v.PersistentVolumeClaim.ClaimName)
				}
			case v.EmptyDir != nil:
			default:
				t.Errorf("%s: volume %s of a kind these tests do not check", where, v.Name)
			}
		}
		r.podConfig(t, p) // exactly one quiver.yaml
	}
	// A token in a committed manifest would be a leaked token.
	for _, s := range r.secrets {
		for k, v := range s.Data {
			if len(v) != 0 {
				t.Errorf("%s: Secret %s key %s holds a value; tokens are set at deploy time, never committed", r.dir, s.Name, k)
			}
		}
		for k, v := range s.StringData {
			if v != "" {
				t.Errorf("%s: Secret %s key %s holds a value; tokens are set at deploy time, never committed", r.dir, s.Name, k)
			}
		}
	}
}

func (r *rendering) requireConfigMap(t *testing.T, where, name, key string) {
	t.Helper()
	cm := r.configMaps[name]
	switch {
	case cm == nil:
		t.Errorf("%s: ConfigMap %s is not in the rendering", where, name)
	case key != "":
		if _, ok := cm.Data[key]; !ok {
			t.Errorf("%s: ConfigMap %s has no key %s", where, name, key)
		}
	}
}

func (r *rendering) requireSecret(t *testing.T, where, name, key string) {
	t.Helper()
	s := r.secrets[name]
	switch {
	case s == nil:
		t.Errorf("%s: Secret %s is not in the rendering", where, name)
	case key != "":
		_, inData := s.Data[key]
		_, inString := s.StringData[key]
		if !inData && !inString {
			t.Errorf("%s: Secret %s has no key %s", where, name, key)
		}
	}
}

// flagValue returns the value of --name in args (--name=v or --name v).
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(args) {
			return args[i+1], true
		}
	}
	return "", false
}

// listenPort is the port of the address a server listens on: the flag if
// given, else the quiver.yaml key.
func listenPort(t *testing.T, where string, args []string, flag, fromConfig string) int32 {
	t.Helper()
	addr, ok := flagValue(args, flag)
	if !ok {
		addr = fromConfig
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("%s: --%s / serve.%s %q: %v", where, flag, flag, addr, err)
	}
	n, err := strconv.ParseInt(port, 10, 32)
	if err != nil {
		t.Fatalf("%s: port of %q: %v", where, addr, err)
	}
	return int32(n)
}

// probePort resolves a probe's port (a number, or a container port name).
func probePort(c *corev1.Container, p intstr.IntOrString) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return -1
}

// checkProbe checks that a probe is an HTTP GET of path on port.
func checkProbe(t *testing.T, where, kind string, c *corev1.Container, pr *corev1.Probe, path string, port int32) {
	t.Helper()
	switch {
	case pr == nil:
		t.Errorf("%s: no %s probe", where, kind)
	case pr.HTTPGet == nil:
		t.Errorf("%s: %s probe is not an HTTP GET", where, kind)
	case pr.HTTPGet.Path != path:
		t.Errorf("%s: %s probe GETs %s, want %s", where, kind, pr.HTTPGet.Path, path)
	case probePort(c, pr.HTTPGet.Port) != port:
		t.Errorf("%s: %s probe on port %s (%d), but the server listens on %d", where, kind, pr.HTTPGet.Port.String(), probePort(c, pr.HTTPGet.Port), port)
	}
}

// checkServe checks the serving Deployment (command serve, or dev in the
// dev overlay): ports as it listens, probes, shutdown, the Service.
func checkServe(t *testing.T, r *rendering, command string) {
	t.Helper()
	d := r.deployments["quiver-serve"]
	if d == nil {
		t.Fatalf("%s: no quiver-serve Deployment", r.dir)
	}
	where := r.dir + ": Deployment quiver-serve"
	p := pod{"Deployment quiver-serve", d.Spec.Template.Labels, &d.Spec.Template.Spec}
	cfg := r.podConfig(t, p)
	c := &d.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != command {
		t.Fatalf("%s: args %v, want quiver %s", where, c.Args, command)
	}
	if sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector); err != nil || !sel.Matches(labels.Set(d.Spec.Template.Labels)) {
		t.Errorf("%s: its selector does not select its own pods (%v)", where, err)
	}
	ports := map[string]int32{
		"grpc":   listenPort(t, where, c.Args, "grpc", cfg.Serve.GRPC),
		"http":   listenPort(t, where, c.Args, "http", cfg.Serve.HTTP),
		"flight": listenPort(t, where, c.Args, "flight", cfg.Serve.Flight),
	}
	for name, port := range ports {
		if !slices.ContainsFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == name && cp.ContainerPort == port }) {
			t.Errorf("%s: no container port %s %d, where the server listens", where, name, port)
		}
	}
	for _, addr := range []string{cfg.Serve.GRPC, cfg.Serve.HTTP, cfg.Serve.Flight} {
		if host, _, _ := net.SplitHostPort(addr); host != "0.0.0.0" && host != "" {
			t.Errorf("%s: serve listens on %s, which other pods cannot reach", where, addr)
		}
	}
	checkProbe(t, where, "liveness", c, c.LivenessProbe, "/healthz", ports["http"])
	checkProbe(t, where, "readiness", c, c.ReadinessProbe, "/readyz", ports["http"])
	checkProbe(t, where, "startup", c, c.StartupProbe, "/healthz", ports["http"])

	// Shutdown: the preStop sleep, then the drain, within the grace period.
	var sleep time.Duration
	if l := c.Lifecycle; l != nil && l.PreStop != nil && l.PreStop.Sleep != nil {
		sleep = time.Duration(l.PreStop.Sleep.Seconds) * time.Second
	} else {
		t.Errorf("%s: no preStop sleep: the Service would still send requests to a pod that stops taking them", where)
	}
	setting := func(flag, fromConfig string, def time.Duration) time.Duration {
		v, ok := flagValue(c.Args, flag)
		if !ok {
			v = fromConfig
		}
		if v == "" {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: %s %q: %v", where, flag, v, err)
		}
		return d
	}
	delay := setting("drain-delay", cfg.Serve.DrainDelay, defaultDrainDelay)
	drain := setting("shutdown-timeout", cfg.Serve.ShutdownTimeout, defaultShutdownTimeout)
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= sleep+delay+drain {
		t.Errorf("%s: terminationGracePeriodSeconds %s is not over the preStop sleep %s + the drain delay %s + the drain %s", where, grace, sleep, delay, drain)
	}

	// The Service selects the serve pods, and only them.
	svc := r.services["quiver-serve"]
	if svc == nil {
		t.Fatalf("%s: no quiver-serve Service", r.dir)
	}
	if svc.Spec.Type != corev1.ServiceTypeClusterIP {
		t.Errorf("%s: Service type %s, want ClusterIP", r.dir, svc.Spec.Type)
	}
	r.requireSelects(t, "Service quiver-serve", labels.SelectorFromSet(svc.Spec.Selector), "quiver-serve")
	for name, port := range ports {
		i := slices.IndexFunc(svc.Spec.Ports, func(sp corev1.ServicePort) bool { return sp.Name == name })
		if i < 0 {
			t.Errorf("%s: the Service has no port %s", r.dir, name)
			continue
		}
		if got := probePort(c, svc.Spec.Ports[i].TargetPort); got != port {
			t.Errorf("%s: the Service's port %s targets %d, the server listens on %d", r.dir, name, got, port)
		}
	}
}

// requireSelects checks that sel matches the pods of Deployment name and
// of no other workload.
func (r *rendering) requireSelects(t *testing.T, what string, sel labels.Selector, name string) {
	t.Helper()
	if sel.Empty() {
		t.Errorf("%s: %s selects everything", r.dir, what)
		return
	}
	for _, p := range r.pods() {
		want := p.where == "Deployment "+name
		if got := sel.Matches(labels.Set(p.labels)); got != want {
			t.Errorf("%s: %s selects %s: %v, want %v", r.dir, what, p.where, got, want)
		}
	}
}

// checkScaling checks that the autoscaler and the disruption budget are
// serve's.
func checkScaling(t *testing.T, r *rendering) {
	t.Helper()
	h := r.hpas["quiver-serve"]
	if h == nil || len(r.hpas) != 1 {
		t.Fatalf("%s: want one autoscaler, quiver-serve", r.dir)
	}
	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.APIVersion != "apps/v1" || ref.Name != "quiver-serve" {
		t.Errorf("%s: the autoscaler scales %s %s %s, want the apps/v1 Deployment quiver-serve", r.dir, ref.APIVersion, ref.Kind, ref.Name)
	}
	if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].Resource == nil || h.Spec.Metrics[0].Resource.Name != corev1.ResourceCPU {
		t.Errorf("%s: the autoscaler should scale on CPU", r.dir)
	}
	if h.Spec.MinReplicas == nil || *h.Spec.MinReplicas < 2 || h.Spec.MaxReplicas < *h.Spec.MinReplicas {
		t.Errorf("%s: autoscaler bounds %v..%d", r.dir, h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	pdb := r.pdbs["quiver-serve"]
	if pdb == nil || len(r.pdbs) != 1 {
		t.Fatalf("%s: want one disruption budget, quiver-serve", r.dir)
	}
	sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
	if err != nil {
		t.Fatal(err)
	}
	r.requireSelects(t, "PodDisruptionBudget quiver-serve", sel, "quiver-serve")
}

// checkStream checks the stream Deployment: probes on its metrics port,
// and a grace period that covers a flush and the group's session timeout.
func checkStream(t *testing.T, r *rendering) {
	t.Helper()
	d := r.deployments["quiver-stream"]
	if d == nil {
		t.Fatalf("%s: no quiver-stream Deployment", r.dir)
	}
	where := r.dir + ": Deployment quiver-stream"
	c := &d.Spec.Template.Spec.Containers[0]
	if len(c.Args) == 0 || c.Args[0] != "stream" {
		t.Fatalf("%s: args %v, want quiver stream", where, c.Args)
	}
	if _, ok := flagValue(c.Args, "group"); !ok {
		t.Errorf("%s: no --group: name the consumer group", where)
	}
	metrics, ok := flagValue(c.Args, "metrics")
	if !ok {
		t.Fatalf("%s: no --metrics: the probes need its /healthz and /readyz", where)
	}
	port := listenPort(t, where, []string{"--metrics=" + metrics}, "metrics", "")
	checkProbe(t, where, "liveness", c, c.LivenessProbe, "/healthz", port)
	checkProbe(t, where, "readiness", c, c.ReadinessProbe, "/readyz", port)
	dur := func(flag string, def time.Duration) time.Duration {
		v, ok := flagValue(c.Args, flag)
		if !ok {
			return def
		}
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("%s: --%s %q: %v", where, flag, v, err)
		}
		return d
	}
	flush, session := dur("flush-interval", time.Second), dur("session-timeout", 10*time.Second)
	grace := time.Duration(*d.Spec.Template.Spec.TerminationGracePeriodSeconds) * time.Second
	if grace <= flush+session {
		t.Errorf("%s: terminationGracePeriodSeconds %s is not over --flush-interval %s + --session-timeout %s", where, grace, flush, session)
	}
	if d.Spec.Replicas == nil || *d.Spec.Replicas < 1 {
		t.Errorf("%s: replicas %v", where, d.Spec.Replicas)
	}
	for name, hpa := range r.hpas {
		if hpa.Spec.ScaleTargetRef.Name == d.Name {
			t.Errorf("%s: autoscaler %s scales the stream; its replicas follow the partitions", r.dir, name)
		}
	}
}

// TestRenderingErrors shows that the decoding is strict: an unknown field
// and an unknown kind are errors.
func TestRenderingErrors(t *testing.T) {
	dec := decoder(t)
	for _, tc := range []struct{ doc, want string }{
		{"apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replica: 2}\n", `unknown field "spec.replica"`},
		{"apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: x}\n", "no kind"},
	} {
		_, _, err := dec.Decode([]byte(tc.doc), nil, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("decode %q: %v, want an error with %q", tc.doc, err, tc.want)
		}
	}
}

func Example_flagValue() {
	v, ok := flagValue([]string{"stream", "--metrics", ":6568"}, "metrics")
	fmt.Println(v, ok)
	// Output: :6568 true
}
