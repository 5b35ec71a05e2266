package cmd

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/target"
)

// The flags of --on-node and of the rotation, as the command checks them.
func TestCaptureValidateOnNodeAndRotation(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name   string
		args   []string
		node   bool
		mutate func(o *CaptureOptions)
		want   string
	}{
		{name: "on-node", args: []string{"--on-node", "--node-namespace", "kube-system"}},
		{name: "on-node on a node", node: true, args: []string{"--on-node"}, want: "--on-node captures a pod's traffic on its node; node/web-0 is a node already: drop --on-node"},
		{name: "on-node with -c", args: []string{"--on-node", "-c", "app"}, want: "--on-node captures all of the pod's traffic on its host-side veth: drop -c/--container"},
		{name: "on-node with --interface", args: []string{"--on-node", "--interface", "eth1"}, want: "--on-node finds the pod's host-side veth itself: drop --interface"},
		{name: "node-namespace alone", args: []string{"--node-namespace", "kube-system"}, want: "--node-namespace is where --on-node runs its node-debug pod: add --on-node, or drop --node-namespace"},
		{name: "node-namespace for a node", node: true, args: []string{"--node-namespace", "kube-system"}},
		{name: "ring", args: []string{"-C", "10", "-W", "5"}},
		{name: "ring by time", args: []string{"-G", "600", "-w", filepath.Join(dir, "web-%Y%m%d%H%M%S.pcap")}},
		{name: "bad size", args: []string{"-C", "10XB"}, want: `invalid argument "10XB" for "-C, --rotate-size" flag: -C/--rotate-size "10XB" is not a size`},
		{name: "ring to stdout", args: []string{"-C", "10", "-w", "-"}, want: "-C and -G write a series of files: name them with -w FILE"},
		{name: "-W alone", args: []string{"-W", "5"}, want: "-W/--rotate-files keeps the last N files of a rotation: add -C SIZE or -G DURATION"},
		{name: "ring into a device", args: []string{"-C", "1", "-w", "/dev/null"}, want: "-C and -G write a series of files, and -w /dev/null is a pipe or a device: name a file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			streams, _, _, _ := genericiooptions.NewTestIOStreams()
			cmd := &cobra.Command{}
			o := NewCaptureOptions(genericclioptions.NewConfigFlags(true), streams)
			o.AddFlags(cmd)
			o.Output = filepath.Join(dir, "web.pcap")
			o.IsTerminal = func(any) bool { return false }
			o.Target = target.Target{Kind: target.KindPod, Name: "web-0"}
			if tt.node {
				o.Target.Kind = target.KindNode
			}
			err := cmd.Flags().Parse(tt.args)
			if err == nil {
				err = o.Validate()
			}
			got := ""
			if err != nil {
				got = err.Error()
			}
			if (tt.want == "") != (got == "") || !strings.HasPrefix(got, tt.want) {
				t.Errorf("error %q, want %q", got, tt.want)
			}
		})
	}
}
