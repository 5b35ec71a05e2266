package cmd

import (
	"encoding/json"
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/yaml"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/version"
)

// VersionInfo is what `kubectl netdiag version -o json|yaml` prints.
type VersionInfo struct {
	Version     string `json:"version"`
	HelperImage string `json:"helperImage"`
	Protocol    int    `json:"protocol"`
	GoVersion   string `json:"goVersion"`
	Platform    string `json:"platform"`
}

// VersionOptions drives `kubectl netdiag version`.
type VersionOptions struct {
	genericiooptions.IOStreams
	Output string
}

// NewVersionOptions returns the defaults.
func NewVersionOptions(streams genericiooptions.IOStreams) *VersionOptions {
	return &VersionOptions{IOStreams: streams}
}

// NewCmdVersion builds `kubectl netdiag version`.
func NewCmdVersion(streams genericiooptions.IOStreams) *cobra.Command {
	o := NewVersionOptions(streams)
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the plugin version and the helper image it injects",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run()
		},
	}
	cmd.Flags().StringVarP(&o.Output, "output", "o", "", "output format: json or yaml (default: text)")
	return cmd
}

// Validate checks the flags.
func (o *VersionOptions) Validate() error {
	switch o.Output {
	case "", "json", "yaml":
		return nil
	}
	return fmt.Errorf("--output must be json or yaml, got %q", o.Output)
}

// Run prints the version.
func (o *VersionOptions) Run() error {
	info := VersionInfo{
		Version:     version.Version,
		HelperImage: version.HelperImage(),
		Protocol:    protocol.Version,
		GoVersion:   runtime.Version(),
		Platform:    runtime.GOOS + "/" + runtime.GOARCH,
	}
	switch o.Output {
	case "json":
		b, err := json.MarshalIndent(info, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(o.Out, "%s\n", b)
		return err
	case "yaml":
		b, err := yaml.Marshal(info)
		if err != nil {
			return err
		}
		_, err = o.Out.Write(b)
		return err
	}
	_, err := fmt.Fprintf(o.Out, "kubectl-netdiag %s\nhelper image: %s\n", info.Version, info.HelperImage)
	return err
}
