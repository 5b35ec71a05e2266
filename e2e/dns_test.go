//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"
)

// dnsReport is what `dns -o json` says, as far as the tests look.
type dnsReport struct {
	FailingHop       string  `json:"failingHop"`
	FailingHopReason string  `json:"failingHopReason"`
	Queries          int     `json:"queries"`
	DurationSeconds  float64 `json:"durationSeconds"`
	ResolvConf       struct {
		Nameservers []string `json:"nameservers"`
	} `json:"resolvConf"`
	Hops []struct {
		Hop    string `json:"hop"`
		Server string `json:"server"`
		Proto  string `json:"proto"`
		Name   string `json:"name"`
		Rcode  string `json:"rcode"`
	} `json:"hops"`
	Lookups []struct {
		Name string `json:"name"`
	} `json:"lookups"`
}

// dnsEnv is the cluster's DNS as e2e/cluster/up.sh set it up.
type dnsEnv struct {
	dnsIP, domain, upstream, zone string
}

func getDNSEnv(t *testing.T) dnsEnv {
	t.Helper()
	dir := os.Getenv("NETDIAG_CLUSTER_DIR")
	if dir == "" {
		dir = "/var/lib/netdiag-cluster"
	}
	env, err := readEnvFile(filepath.Join(dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	d := dnsEnv{dnsIP: env["NETDIAG_DNS_IP"], domain: env["NETDIAG_CLUSTER_DOMAIN"], upstream: env["NETDIAG_UPSTREAM_DNS"], zone: env["NETDIAG_TEST_ZONE"]}
	if d.dnsIP == "" || d.domain == "" || d.upstream == "" || d.zone == "" {
		t.Skipf("the local cluster has no DNS (NETDIAG_DNS_IP etc. missing in %s/env); bring it up again with e2e/cluster/up.sh", dir)
	}
	return d
}

// dns runs the command with -o json and decodes its report.
func (c *cluster) dns(t *testing.T, args ...string) (dnsReport, result, time.Duration) {
	t.Helper()
	start := time.Now()
	r := c.run(t, 2*time.Minute, append(append([]string{"netdiag", "dns"}, args...), "-o", "json")...)
	took := time.Since(start)
	var rep dnsReport
	if r.code == 0 || r.code == 3 {
		if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
			t.Fatalf("dns -o json: %v\n%s", err, r.stdout)
		}
	}
	return rep, r, took
}

// wantHop runs the command and checks it names exactly hop (exit 3).
func (c *cluster) wantHop(t *testing.T, hop string, args ...string) dnsReport {
	t.Helper()
	rep, r, _ := c.dns(t, args...)
	if r.code != 3 || rep.FailingHop != hop {
		t.Fatalf("exit %d, failing hop %q (%s), want exit 3 and %q\nstdout: %s", r.code, rep.FailingHop, rep.FailingHopReason, hop, r.stdout)
	}
	t.Logf("failing hop %s: %s", rep.FailingHop, rep.FailingHopReason)
	return rep
}

// clusterDNSHealthy waits until the kube-dns ClusterIP answers a cluster
// name and a name of the test zone (through the upstream), from the node.
func clusterDNSHealthy(t *testing.T, d dnsEnv) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), time.Second, 2*time.Minute, true, func(context.Context) (bool, error) {
		for _, name := range []string{"kubernetes.default.svc." + d.domain, "www." + d.zone} {
			out, err := exec.Command("busybox", "nslookup", name, d.dnsIP).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Name:") {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("cluster DNS did not answer again: %v", err)
	}
}

func (c *cluster) readyDNSEndpoints(t *testing.T) int {
	t.Helper()
	l, err := c.client.DiscoveryV1().EndpointSlices("kube-system").List(context.Background(), metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=kube-dns"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range l.Items {
		for _, e := range s.Endpoints {
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				n += len(e.Addresses)
			}
		}
	}
	return n
}

func (c *cluster) waitDNSEndpoints(t *testing.T, ready bool) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 2*time.Minute, true, func(context.Context) (bool, error) {
		return (c.readyDNSEndpoints(t) > 0) == ready, nil
	})
	if err != nil {
		t.Fatalf("kube-dns endpoints ready=%v: %v", ready, err)
	}
}

// scaleCoreDNSToZero scales the CoreDNS Deployment to 0 and waits until no
// CoreDNS pod is left (a terminating one still serves: kube-proxy falls back
// to serving-terminating endpoints). The function it returns scales it back
// and waits until cluster DNS is healthy again.
func (c *cluster) scaleCoreDNSToZero(t *testing.T, d dnsEnv) (restore func()) {
	t.Helper()
	ctx := context.Background()
	deployments := c.client.AppsV1().Deployments("kube-system")
	setScale := func(n int32) int32 {
		s, err := deployments.GetScale(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		was := s.Spec.Replicas
		s.Spec.Replicas = n
		if _, err := deployments.UpdateScale(ctx, "coredns", s, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
		return was
	}
	replicas := setScale(0)
	restore = func() {
		setScale(replicas)
		c.waitDNSEndpoints(t, true)
		clusterDNSHealthy(t, d)
	}
	c.waitDNSEndpoints(t, false)
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l, err := c.client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
		return err == nil && len(l.Items) == 0, nil
	})
	if err != nil {
		restore()
		t.Fatalf("CoreDNS pods still there after scaling to 0: %v", err)
	}
	return restore
}

// restartCoreDNS deletes the CoreDNS pods; their Deployment starts new
// ones, which read the Corefile afresh.
func (c *cluster) restartCoreDNS(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	l, err := c.client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range l.Items {
		if err := c.client.CoreV1().Pods("kube-system").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
			t.Fatal(err)
		}
	}
	// The old pods' endpoints go, the new ones' come.
	err = wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		l2, err := c.client.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
		if err != nil {
			return false, nil
		}
		for _, p := range l2.Items {
			for _, old := range l.Items {
				if p.Name == old.Name {
					return false, nil
				}
			}
		}
		return len(l2.Items) > 0, nil
	})
	if err != nil {
		t.Fatalf("old CoreDNS pods did not go: %v", err)
	}
	c.waitDNSEndpoints(t, true)
}

// podPID is a process of the pod (its container's), found by the pod UID
// in /proc/PID/cgroup.
func podPID(t *testing.T, uid types.UID) int {
	t.Helper()
	ids := []string{string(uid), strings.ReplaceAll(string(uid), "-", "_")}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cgroup"))
		if err != nil {
			continue
		}
		for _, id := range ids {
			if strings.Contains(string(b), id) {
				return pid
			}
		}
	}
	t.Fatalf("no process of pod %s on this node", uid)
	return 0
}

// TestDNSHealthy: a healthy cluster gives exit 0 in 20 of 20 runs, and the
// default run stays within 10 s and 50 queries a second.
func TestDNSHealthy(t *testing.T) {
	c := getCluster(t)
	d := getDNSEnv(t)
	clusterDNSHealthy(t, d)
	ns := c.namespace(t)
	c.webPod(t, ns, "web")

	var maxTook, total time.Duration
	for i := 0; i < 20; i++ {
		rep, r, took := c.dns(t, "-n", ns, "pod/web")
		if r.code != 0 || rep.FailingHop != "" {
			t.Fatalf("run %d: exit %d, failing hop %q (%s)\n%s", i+1, r.code, rep.FailingHop, rep.FailingHopReason, r.stdout)
		}
		maxTook = max(maxTook, took)
		total += took
		if i == 0 {
			// kubernetes.default.svc at every pod hop, UDP and TCP.
			if len(rep.Hops) < 6 {
				t.Errorf("only %d probes: %+v", len(rep.Hops), rep.Hops)
			}
			if rate := float64(rep.Queries) / took.Seconds(); rate > 50 {
				t.Errorf("%d queries in %s: %.0f a second, more than 50", rep.Queries, took, rate)
			}
			t.Logf("default run: %d queries in %s (engine %.2fs)", rep.Queries, took.Round(time.Millisecond), rep.DurationSeconds)
		}
	}
	t.Logf("20 of 20 healthy; wall time mean %s, max %s", (total / 20).Round(time.Millisecond), maxTook.Round(time.Millisecond))
	if maxTook > 10*time.Second {
		t.Errorf("the slowest default run took %s, more than 10s", maxTook)
	}

	// A name of the test zone: the lookup's expansions, the upstream
	// from the node, and the query count against the search list.
	name := "www." + d.zone
	rep, r, took := c.dns(t, "-n", ns, "pod/web", name)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
	// ndots:5, a name with 2 dots: each search domain first, then as is.
	if len(rep.Lookups) != 4 || rep.Lookups[3].Name != name+"." {
		t.Errorf("lookup of %s sent %+v, want its 3 search expansions then the name", name, rep.Lookups)
	}
	upstream := 0
	for _, h := range rep.Hops {
		if h.Hop == "upstream" && h.Rcode == "NOERROR" {
			upstream++
		}
	}
	if upstream != 2 {
		t.Errorf("upstream answered %d of 2 (udp, tcp): %+v", upstream, rep.Hops)
	}
	t.Logf("run with %s: %d queries in %s", name, rep.Queries, took.Round(time.Millisecond))

	// Bad input is refused before anything is created.
	r = c.run(t, time.Minute, "netdiag", "dns", "-n", ns, "pod/web", "bad name")
	if r.code != 1 || !strings.Contains(r.stderr, `"bad name" is not a DNS name`) {
		t.Errorf("bad name: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestDNSFaults induces each fault of the issue and checks that dns names
// exactly the expected hop; every fault is undone, and the cluster's DNS
// answers again, before the next.
func TestDNSFaults(t *testing.T) {
	c := getCluster(t)
	d := getDNSEnv(t)
	clusterDNSHealthy(t, d)
	ns := c.namespace(t)
	web := c.webPod(t, ns, "web")
	name := "www." + d.zone
	ctx := context.Background()

	t.Run("dnsPolicy None with a bogus nameserver → config", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "bogus", Namespace: ns},
			Spec: corev1.PodSpec{
				NodeName: c.node, TerminationGracePeriodSeconds: ptr.To[int64](0),
				DNSPolicy: corev1.DNSNone,
				DNSConfig: &corev1.PodDNSConfig{Nameservers: []string{"198.51.100.53"}, Searches: []string{ns + ".svc." + d.domain}},
				Containers: []corev1.Container{{Name: "web", Image: webImage, ImagePullPolicy: corev1.PullNever,
					Command: []string{"httpd", "-f", "-p", "8080", "-h", "/www"}}},
			},
		}
		if _, err := c.client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		c.waitRunning(t, ns, "bogus")
		rep := c.wantHop(t, "config", "-n", ns, "pod/bogus")
		if len(rep.ResolvConf.Nameservers) != 1 || rep.ResolvConf.Nameservers[0] != "198.51.100.53" {
			t.Errorf("resolv.conf nameservers %v", rep.ResolvConf.Nameservers)
		}
	})

	t.Run("UDP/53 dropped in the pod's netns → udp53", func(t *testing.T) {
		pid := strconv.Itoa(podPID(t, web.UID))
		rule := []string{"-t", "filter", "OUTPUT", "-p", "udp", "--dport", "53", "-j", "DROP"}
		ipt := func(op string) error {
			args := append([]string{"-t", pid, "-n", "iptables", rule[0], rule[1], op}, rule[2:]...)
			out, err := exec.Command("nsenter", args...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("nsenter %s: %v: %s", strings.Join(args, " "), err, out)
			}
			return nil
		}
		if err := ipt("-I"); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := ipt("-D"); err != nil {
				t.Error(err)
			}
		}()
		rep := c.wantHop(t, "udp53", "-n", ns, "pod/web")
		tcp := 0
		for _, h := range rep.Hops {
			if h.Proto == "tcp" && h.Rcode == "NOERROR" {
				tcp++
			}
			if h.Proto == "udp" && h.Rcode != "" && h.Hop != "upstream" {
				t.Errorf("a UDP query from the pod got an answer: %+v", h)
			}
		}
		if tcp == 0 {
			t.Errorf("no TCP answer: %+v", rep.Hops)
		}
	})

	t.Run("CoreDNS scaled to 0 → control", func(t *testing.T) {
		defer c.scaleCoreDNSToZero(t, d)()
		rep := c.wantHop(t, "control", "-n", ns, "pod/web")
		if !strings.Contains(rep.FailingHopReason, "no ready endpoints") {
			t.Errorf("reason %q", rep.FailingHopReason)
		}
	})

	t.Run("Corefile forwards to a black hole → upstream", func(t *testing.T) {
		cm, err := c.client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		orig := cm.Data["Corefile"]
		if !strings.Contains(orig, "forward . "+d.upstream) {
			t.Fatalf("the Corefile does not forward to %s:\n%s", d.upstream, orig)
		}
		setCorefile := func(text string) {
			cm, err := c.client.CoreV1().ConfigMaps("kube-system").Get(ctx, "coredns", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cm.Data["Corefile"] = text
			if _, err := c.client.CoreV1().ConfigMaps("kube-system").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			c.restartCoreDNS(t)
		}
		setCorefile(strings.Replace(orig, "forward . "+d.upstream, "forward . 198.51.100.53", 1))
		defer func() {
			setCorefile(orig)
			clusterDNSHealthy(t, d)
		}()
		rep := c.wantHop(t, "upstream", "-n", ns, "pod/web", name)
		cluster := 0
		for _, h := range rep.Hops {
			if strings.HasPrefix(h.Name, "kubernetes.default.svc.") && h.Rcode == "NOERROR" {
				cluster++
			}
		}
		if cluster == 0 {
			t.Errorf("cluster names did not resolve: %+v", rep.Hops)
		}
	})

	t.Run("kube-dns DNAT rules removed, kube-proxy stopped → service", func(t *testing.T) {
		root, _ := filepath.Abs("..")
		restart := exec.Command(filepath.Join(root, "e2e", "cluster", "restart-daemon.sh"), "kube-proxy", "--down", "20s")
		var restartOut strings.Builder
		restart.Stdout, restart.Stderr = &restartOut, &restartOut
		if err := restart.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- restart.Wait() }()
		defer func() {
			if err := <-done; err != nil {
				t.Errorf("restart-daemon.sh kube-proxy: %v\n%s", err, restartOut.String())
			}
			clusterDNSHealthy(t, d)
		}()
		// Wait until kube-proxy is down, then remove its kube-dns rules.
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
			return exec.Command("pgrep", "-x", "kube-proxy").Run() != nil, nil
		})
		if err != nil {
			t.Fatalf("kube-proxy did not stop: %v\n%s", err, restartOut.String())
		}
		save, err := exec.Command("iptables-save", "-t", "nat").Output()
		if err != nil {
			t.Fatal(err)
		}
		removed := 0
		for _, line := range strings.Split(string(save), "\n") {
			if !strings.HasPrefix(line, "-A KUBE-SERVICES -d "+d.dnsIP+"/32 ") {
				continue
			}
			// The rule's words, quotes and all, as iptables-save wrote them.
			if out, err := exec.Command("sh", "-c", "iptables -t nat -D "+strings.TrimPrefix(line, "-A ")).CombinedOutput(); err != nil {
				t.Fatalf("removing %q: %v: %s", line, err, out)
			}
			removed++
		}
		if removed == 0 {
			t.Fatalf("no KUBE-SERVICES rule for %s", d.dnsIP)
		}
		rep := c.wantHop(t, "service", "-n", ns, "pod/web")
		answered := false
		for _, h := range rep.Hops {
			answered = answered || (h.Hop == "endpoint" && h.Rcode == "NOERROR")
		}
		if !answered {
			t.Errorf("the endpoints did not answer directly: %+v", rep.Hops)
		}
	})
}

// TestDNSQueryCountMatchesCapture: the queries the lookup rows say a
// lookup sends are the ones a capture on port 53 in the pod sees.
func TestDNSQueryCountMatchesCapture(t *testing.T) {
	c := getCluster(t)
	d := getDNSEnv(t)
	clusterDNSHealthy(t, d)
	ns := c.namespace(t)
	c.webPod(t, ns, "web")
	file := filepath.Join(t.TempDir(), "dns.pcap")
	capture := c.start(t, "netdiag", "capture", "pod/web", "-n", ns, "-f", "udp dst port 53", "-w", file)
	capture.stderr.waitFor(t, readyText, 90*time.Second)

	name := "www." + d.zone
	rep, r, _ := c.dns(t, "-n", ns, "pod/web", name)
	if r.code != 0 {
		t.Fatalf("exit %d\n%s", r.code, r.stdout)
	}
	time.Sleep(time.Second)
	if err := capture.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := capture.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("capture exit code %d", code)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, q := range dnsQueries(t, data) {
		seen[q]++
	}
	// Each search expansion of the lookup is asked once, by the lookup
	// alone (the hops are asked the name that answered).
	var expansions []string
	for _, l := range rep.Lookups {
		if l.Name != name+"." {
			expansions = append(expansions, l.Name)
		}
	}
	if len(expansions) == 0 {
		t.Fatalf("no search expansions in %+v", rep.Lookups)
	}
	for _, e := range expansions {
		if seen[e] != 1 {
			t.Errorf("the capture saw %d queries for %s, want 1 (lookup rows %+v)", seen[e], e, rep.Lookups)
		}
	}
	// The name itself: once by the lookup, once per UDP hop from the pod.
	want := 1
	for _, h := range rep.Hops {
		if h.Proto == "udp" && h.Hop != "upstream" && h.Name == name+"." {
			want++
		}
	}
	if seen[name+"."] != want {
		t.Errorf("the capture saw %d queries for %s., want %d", seen[name+"."], name, want)
	}
	t.Logf("lookup of %s: %d queries in the lookup rows, the capture saw %v", name, len(rep.Lookups), seen)
}

// dnsQueries decodes a pcap of UDP DNS queries into their question names.
func dnsQueries(t *testing.T, data []byte) []string {
	t.Helper()
	r, err := pcapgo.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("pcap: %v (%d bytes)", err, len(data))
	}
	var out []string
	for {
		b, _, err := r.ReadPacketData()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := gopacket.NewPacket(b, r.LinkType(), gopacket.Default)
		dns, ok := p.Layer(layers.LayerTypeDNS).(*layers.DNS)
		if !ok || dns.QR {
			t.Fatalf("not a DNS query: %v", p)
		}
		for _, q := range dns.Questions {
			out = append(out, string(q.Name)+".")
		}
	}
	return out
}
