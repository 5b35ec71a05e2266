package checks

import (
	"encoding/json"
	"io"
	"testing"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// parseFlags is the helper's reading of `check` arguments into a Config.
func parseFlags(args []string, stdin io.Reader, usage io.Writer) (Config, error) {
	req, err := protocol.ParseCheckRequest(args, stdin, usage)
	if err != nil {
		return Config{}, err
	}
	return ConfigFrom(req)
}

// parseFixFlags is the helper's reading of `fix` arguments.
func parseFixFlags(args []string, stdin io.Reader, usage io.Writer) (FixConfig, error) {
	req, err := protocol.ParseFixRequest(args, stdin, usage)
	if err != nil {
		return FixConfig{}, err
	}
	return FixConfigFrom(req)
}

// asJSON is v as the plugin sees it: JSON decoded into a map.
func asJSON(t *testing.T, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}
