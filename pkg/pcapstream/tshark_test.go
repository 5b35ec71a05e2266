package pcapstream

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// needTool finds a Wireshark tool; outside CI its absence skips the test.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is not installed: hack/ensure-packages.sh tshark installs it (run it before the unit tests)", name)
		}
		t.Skipf("%s is not installed (hack/ensure-packages.sh tshark installs it)", name)
	}
	return p
}

// TestJoinedOutputInWireshark checks joined outputs with Wireshark's own
// readers: no error, every packet there, the gap comment on the first
// packet after the gap.
func TestJoinedOutputInWireshark(t *testing.T) {
	tshark := needTool(t, "tshark")
	capinfos := needTool(t, "capinfos")
	for _, format := range []Format{FormatPcap, FormatPcapNG} {
		t.Run(format.String(), func(t *testing.T) {
			out, _, comment := joinBroken(t, format)
			f := filepath.Join(t.TempDir(), "joined."+format.String())
			if err := os.WriteFile(f, out, 0o600); err != nil {
				t.Fatal(err)
			}
			info := run(t, capinfos, "-M", "-c", "-t", f)
			if !strings.Contains(info, "Number of packets:   7") {
				t.Errorf("capinfos:\n%s", info)
			}
			if !strings.Contains(info, "File type:           "+format.String()+"\n") {
				t.Errorf("capinfos: want file type %s in\n%s", format, info)
			}
			fields := run(t, tshark, "-r", f, "-T", "fields", "-e", "frame.number", "-e", "frame.len", "-e", "frame.comment")
			lines := strings.Split(strings.TrimRight(fields, "\n"), "\n")
			if len(lines) != 7 {
				t.Fatalf("tshark shows %d packets, want 7:\n%s", len(lines), fields)
			}
			for i, l := range lines {
				c := ""
				if format == FormatPcapNG && i == 5 {
					c = comment
				}
				cols := strings.SplitN(l, "\t", 3)
				if len(cols) != 3 || cols[2] != c {
					t.Errorf("tshark packet %d: %q, want comment %q", i+1, l, c)
				}
			}
		})
	}
}

func TestMappedOutputInWireshark(t *testing.T) {
	tshark := needTool(t, "tshark")
	out := mappedJoin(t)
	f := filepath.Join(t.TempDir(), "mapped.pcapng")
	if err := os.WriteFile(f, out, 0o600); err != nil {
		t.Fatal(err)
	}
	fields := run(t, tshark, "-r", f, "-T", "fields", "-e", "frame.interface_id", "-e", "frame.interface_name", "-e", "frame.cap_len")
	want := "0\teth0\t10\n1\tlo\t20\n0\teth0\t30\n1\tlo\t100\n1\tlo\t8\n"
	if fields != want {
		t.Errorf("tshark:\n%s\nwant:\n%s", fields, want)
	}
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	// tshark warns on stderr about running as root; anything else is an error.
	var errs []string
	for _, l := range strings.Split(stderr.String(), "\n") {
		if l != "" && !strings.Contains(l, "Running as user") && !strings.Contains(l, "could be dangerous") {
			errs = append(errs, l)
		}
	}
	if err != nil || len(errs) > 0 {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}
