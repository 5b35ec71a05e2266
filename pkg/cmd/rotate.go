package cmd

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/pcapstream"
)

// A long capture goes into a ring of files, the way tcpdump's -C, -W and
// -G do: the stream from the helper (after the joiner) is split at record
// boundaries, and every file starts with the stream's header (pcap: the
// global header; pcapng: the section header and the interface blocks), so
// each one is a complete capture file.

// parseSize reads -C: a plain number is millions of bytes, as in tcpdump
// (-C 100 is 100,000,000 bytes); kB, MB, GB are powers of 1000, KiB, MiB,
// GiB powers of 1024, as are tcpdump's own suffixes k, m, g; B is bytes.
// Suffixes are case-insensitive; the number may have a fraction (1.5MB).
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	mult := map[string]float64{
		"": 1e6, "b": 1,
		"kb": 1e3, "mb": 1e6, "gb": 1e9,
		"k": 1 << 10, "m": 1 << 20, "g": 1 << 30,
		"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if num == "" || err != nil || mult == 0 {
		return 0, fmt.Errorf("-C/--rotate-size %q is not a size: give millions of bytes as tcpdump does (-C 100), or a number with a unit: 500kB, 10MB, 1GB, 64MiB, 2GiB", s)
	}
	n := math.Round(v * mult)
	if n < 1 || n > math.MaxInt64/2 {
		return 0, fmt.Errorf("-C/--rotate-size %q must be at least 1 byte", s)
	}
	return int64(n), nil
}

// parseEvery reads -G: a Go duration (10m, 1h30m), or a plain number of
// seconds as tcpdump takes it (-G 600).
func parseEvery(s string) (time.Duration, error) {
	t := strings.TrimSpace(s)
	if n, err := strconv.ParseUint(t, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(t)
	if err != nil {
		return 0, fmt.Errorf("-G/--rotate-every %q is not a duration: give seconds as tcpdump does (-G 600), or a duration like 10m or 1h", s)
	}
	return d, nil
}

// sizeValue is the -C flag.
type sizeValue struct {
	n    *int64
	text string
}

func (v *sizeValue) String() string {
	if v.text != "" {
		return v.text
	}
	if *v.n == 0 {
		return "0"
	}
	return strconv.FormatInt(*v.n, 10) + "B"
}

func (v *sizeValue) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*v.n, v.text = n, s
	return nil
}

func (v *sizeValue) Type() string { return "SIZE" }

// everyValue is the -G flag.
type everyValue struct{ d *time.Duration }

func (v *everyValue) String() string {
	if *v.d == 0 {
		return "0"
	}
	return v.d.String()
}

func (v *everyValue) Set(s string) error {
	d, err := parseEvery(s)
	if err != nil {
		return err
	}
	*v.d = d
	return nil
}

func (v *everyValue) Type() string { return "DURATION" }

// rotation says how -w FILE is split into files.
type rotation struct {
	Size  int64         // -C: start a new file once the current one is larger
	Every time.Duration // -G: start a new file once the current one is this old
	Files int           // -W: keep only the last Files files (0: all)
}

func (r rotation) on() bool { return r.Size > 0 || r.Every > 0 }

// validate checks the rotation flags against the output.
func (r rotation) validate(output string, wireshark bool) error {
	switch {
	case r.Files < 0:
		return fmt.Errorf("-W/--rotate-files must not be negative, got %d", r.Files)
	case r.Every < 0:
		return fmt.Errorf("-G/--rotate-every must not be negative, got %s", r.Every)
	case r.Every > 0 && r.Every < time.Second:
		return fmt.Errorf("-G/--rotate-every must be at least 1s, got %s", r.Every)
	case r.Files > 0 && !r.on():
		return fmt.Errorf("-W/--rotate-files keeps the last N files of a rotation: add -C SIZE or -G DURATION")
	case !r.on():
		return nil
	case wireshark || output == "" || output == "-":
		return fmt.Errorf("-C and -G write a series of files: name them with -w FILE (they cannot go to stdout or --wireshark)")
	}
	if strings.Contains(output, "%") {
		if _, err := strftime(output, time.Now()); err != nil {
			return err
		}
	}
	return nil
}

// strftime expands the conversions of pattern that make sense in a file
// name, in local time as tcpdump does: %Y %m %d %H %M %S %y %j %s %F %T %%.
func strftime(pattern string, t time.Time) (string, error) {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 == len(pattern) {
			return "", fmt.Errorf("-w %s ends in a lone %%: write %%%% for a %% sign", pattern)
		}
		i++
		switch pattern[i] {
		case 'Y':
			fmt.Fprintf(&b, "%04d", t.Year())
		case 'y':
			fmt.Fprintf(&b, "%02d", t.Year()%100)
		case 'm':
			fmt.Fprintf(&b, "%02d", int(t.Month()))
		case 'd':
			fmt.Fprintf(&b, "%02d", t.Day())
		case 'H':
			fmt.Fprintf(&b, "%02d", t.Hour())
		case 'M':
			fmt.Fprintf(&b, "%02d", t.Minute())
		case 'S':
			fmt.Fprintf(&b, "%02d", t.Second())
		case 'j':
			fmt.Fprintf(&b, "%03d", t.YearDay())
		case 's':
			fmt.Fprintf(&b, "%d", t.Unix())
		case 'F':
			b.WriteString(t.Format("2006-01-02"))
		case 'T':
			b.WriteString(t.Format("15:04:05"))
		case '%':
			b.WriteByte('%')
		default:
			return "", fmt.Errorf("-w %s: %%%c is not a time conversion this plugin knows; use %%Y %%m %%d %%H %%M %%S %%y %%j %%s %%F %%T, or %%%% for a %% sign", pattern, pattern[i])
		}
	}
	return b.String(), nil
}

// digits is tcpdump's width of the -W file number: enough for N-1.
func digits(files int) int {
	w := 0
	for x := files - 1; x > 0; x /= 10 {
		w++
	}
	return w
}

// rotator is the output of a rotated capture: a pipe into a goroutine that
// reads the stream record by record (pcapstream.Reader) and writes each
// file. Every file is written as -w FILE is (a new file beside it, mode
// 0600, renamed into place when complete): a name holds a complete file or
// nothing, and only the file being written is under a temporary name.
type rotator struct {
	path string
	rot  rotation
	now  func() time.Time
	// opened is told of each new file (the second Ctrl-C keeps it).
	opened func(*outputFile)

	pw   *io.PipeWriter
	done chan struct{}
	err  error

	mu       sync.Mutex
	cur      *outputFile
	curStart time.Time
	curName  string
	count    int      // files opened so far
	lastBase string   // the strftime name of the last file
	seq      int      // files under lastBase
	kept     []string // complete files still on disk, oldest first
	dropped  int      // complete files removed or replaced (-W)
}

func newRotator(path string, rot rotation, now func() time.Time, opened func(*outputFile)) *rotator {
	if now == nil {
		now = time.Now
	}
	pr, pw := io.Pipe()
	r := &rotator{path: path, rot: rot, now: now, opened: opened, pw: pw, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		err := r.copy(pr)
		if ferr := r.finishCurrent(); err == nil {
			err = ferr
		}
		r.err = err
		// Whatever comes after a failure is refused: the capture stops.
		if err != nil {
			_ = pr.CloseWithError(err)
		} else {
			_, _ = io.Copy(io.Discard, pr)
		}
	}()
	return r
}

func (r *rotator) Write(p []byte) (int, error) { return r.pw.Write(p) }

// Close ends the stream and finishes the last file.
func (r *rotator) Close() error {
	_ = r.pw.Close()
	<-r.done
	return r.err
}

// copy splits the stream into files.
func (r *rotator) copy(in io.Reader) error {
	rd, err := pcapstream.NewReader(in)
	if err != nil {
		if errors.Is(err, pcapstream.ErrTruncated) {
			return nil // nothing came: no file
		}
		return err
	}
	// preamble is what starts every file: the stream's header and its
	// interfaces. A file opens with its first packet (so -G names it by
	// the time of its first packet, and no file holds a header alone),
	// or at the end when no packet came at all.
	var preamble []byte
	write := func(raw []byte) error {
		if _, err := r.cur.Write(raw); err != nil {
			return fmt.Errorf("writing %s: %w", r.curName, unwrapPathError(err))
		}
		return nil
	}
	for {
		rec, err := rd.Next()
		if err == io.EOF || errors.Is(err, pcapstream.ErrTruncated) {
			// At the end (a last record cut by the break is left out).
			if r.count == 0 && len(preamble) > 0 {
				return r.open(preamble)
			}
			return nil
		}
		if err != nil {
			return err
		}
		switch rec.Type {
		case pcapstream.RecordSection:
			preamble = append(preamble[:0], rec.Raw...)
		case pcapstream.RecordInterface:
			preamble = append(preamble, rec.Raw...)
		case pcapstream.RecordPacket:
			if r.cur != nil && r.due() {
				if err := r.finishCurrent(); err != nil {
					return err
				}
			}
			if r.cur == nil {
				if err := r.open(preamble); err != nil {
					return err
				}
			}
			if err := write(rec.Raw); err != nil {
				return err
			}
			continue
		default:
			// Other blocks go into the current file.
			if r.cur == nil {
				if err := r.open(preamble); err != nil {
					return err
				}
			}
			if err := write(rec.Raw); err != nil {
				return err
			}
			continue
		}
		// A header or interface in the middle of a file goes into it too
		// (new files get it with the preamble).
		if r.cur != nil {
			if err := write(rec.Raw); err != nil {
				return err
			}
		}
	}
}

// due says whether the current file is complete: larger than -C (it passes
// SIZE by at most one packet, as with tcpdump), or older than -G.
func (r *rotator) due() bool {
	if r.rot.Size > 0 && r.cur.Written() > r.rot.Size {
		return true
	}
	return r.rot.Every > 0 && r.now().Sub(r.curStart) >= r.rot.Every
}

// name is the name of the next file: tcpdump's. With -W N: FILE and the
// file's number modulo N, zero-padded to the width of N-1 (web.pcap0 …
// web.pcap9 for -W 10). Without: FILE, FILE1, FILE2, … With a % in FILE,
// its time conversions at the file's start, and a number after it when the
// name repeats (several files within one second, or no time conversion
// finer than -G).
func (r *rotator) name(t time.Time) string {
	if strings.Contains(r.path, "%") {
		base, _ := strftime(r.path, t) // checked by validate
		if base == r.lastBase {
			r.seq++
			return base + strconv.Itoa(r.seq)
		}
		r.lastBase, r.seq = base, 0
		return base
	}
	if r.rot.Files > 0 {
		return fmt.Sprintf("%s%0*d", r.path, digits(r.rot.Files), r.count%r.rot.Files)
	}
	if r.count == 0 {
		return r.path
	}
	return r.path + strconv.Itoa(r.count)
}

func (r *rotator) open(preamble []byte) error {
	t := r.now()
	name := r.name(t)
	f, err := createOutputFile(name)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.cur, r.curName, r.curStart = f, name, t
	r.count++
	r.mu.Unlock()
	if r.opened != nil {
		r.opened(f)
	}
	if len(preamble) > 0 {
		if _, err := f.Write(preamble); err != nil {
			return fmt.Errorf("writing %s: %w", name, unwrapPathError(err))
		}
	}
	return nil
}

// finishCurrent moves the current file into place and removes the oldest
// ones beyond -W.
func (r *rotator) finishCurrent() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == nil {
		return nil
	}
	f, name := r.cur, r.curName
	r.cur = nil
	if _, err := f.finish(true); err != nil {
		return err
	}
	for i, k := range r.kept {
		if k == name { // the ring came round: the rename replaced it
			r.kept = append(r.kept[:i], r.kept[i+1:]...)
			r.dropped++
			break
		}
	}
	r.kept = append(r.kept, name)
	for r.rot.Files > 0 && len(r.kept) > r.rot.Files {
		old := r.kept[0]
		r.kept = r.kept[1:]
		if err := os.Remove(old); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing %s (beyond -W %d): %w", old, r.rot.Files, unwrapPathError(err))
		}
		r.dropped++
	}
	return nil
}

// describe names the files in the summary.
func (r *rotator) describe() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch n := len(r.kept); {
	case n == 0:
		return "no file"
	case n == 1:
		return r.kept[0]
	default:
		s := fmt.Sprintf("%d files, %s … %s", n, r.kept[0], r.kept[n-1])
		if r.dropped > 0 {
			s += fmt.Sprintf(" (%d older %s dropped, -W %d)", r.dropped, plural(r.dropped, "file", "files"), r.rot.Files)
		}
		return s
	}
}

// files are the complete files on disk, oldest first.
func (r *rotator) files() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.kept...)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
