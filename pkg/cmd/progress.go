package cmd

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/remotecapture"
)

// progressEvery is the shortest time between two renderings of the
// progress line: at most four a second.
const progressEvery = 250 * time.Millisecond

// clearLine returns to the start of the line and erases it.
const clearLine = "\r\x1b[K"

// progressLine is a capture's live progress on a terminal's stderr: one
// line, redrawn in place (packets, bytes, kernel drops, rates, elapsed
// time). It is also the stream every other stderr message of the capture
// goes through: the line is erased before the message, so the two never
// mix, and redrawn at the next update.
type progressLine struct {
	mu      sync.Mutex
	w       io.Writer
	now     func() time.Time
	last    time.Time // of the last rendering
	shown   bool
	stopped bool
	prev    protocol.Progress
	havePrv bool
}

func newProgressLine(w io.Writer, now func() time.Time) *progressLine {
	if now == nil {
		now = time.Now
	}
	return &progressLine{w: w, now: now}
}

// update renders p, unless the last rendering is less than progressEvery
// ago or the line was stopped.
func (l *progressLine) update(p protocol.Progress) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return
	}
	pps, bps := float64(0), float64(0)
	switch {
	case l.havePrv && p.DurationSeconds > l.prev.DurationSeconds && p.Packets >= l.prev.Packets:
		dt := p.DurationSeconds - l.prev.DurationSeconds
		pps, bps = float64(p.Packets-l.prev.Packets)/dt, float64(p.Bytes-l.prev.Bytes)/dt
	case p.DurationSeconds > 0:
		pps, bps = float64(p.Packets)/p.DurationSeconds, float64(p.Bytes)/p.DurationSeconds
	}
	l.prev, l.havePrv = p, true
	now := l.now()
	if !l.last.IsZero() && now.Sub(l.last) < progressEvery {
		return
	}
	l.last = now
	elapsed := (time.Duration(p.DurationSeconds*float64(time.Second)) / time.Second) * time.Second
	fmt.Fprintf(l.w, "%s%d packets, %s, %d kernel drops, %.0f pkt/s, %s/s, %s elapsed",
		clearLine, p.Packets, remotecapture.HumanBytes(p.Bytes), p.KernelDrops, pps, remotecapture.HumanBytes(uint64(bps)), elapsed)
	l.shown = true
}

// Write erases the line, then writes b (another message of the capture).
func (l *progressLine) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clearLocked()
	return l.w.Write(b)
}

// stop erases the line for good: the summary comes next.
func (l *progressLine) stop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clearLocked()
	l.stopped = true
}

func (l *progressLine) clearLocked() {
	if l.shown {
		_, _ = io.WriteString(l.w, clearLine)
		l.shown = false
	}
}

// startProgress sets up the progress line when stderr is a terminal: cfg
// asks the helper for progress, and the returned stream (the capture's
// stderr) erases the line before any other message. Otherwise it returns
// o.ErrOut as it is.
func (o *CaptureOptions) startProgress(cfg *remotecapture.Config) io.Writer {
	if o.IsTerminal == nil || !o.IsTerminal(o.ErrOut) {
		return o.ErrOut
	}
	l := newProgressLine(o.ErrOut, o.Now)
	o.progress.Store(l)
	cfg.Progress = l.update
	return l
}

// stopProgress erases the progress line for good, if there is one.
func (o *CaptureOptions) stopProgress() {
	if l := o.progress.Load(); l != nil {
		l.stop()
	}
}
