package capture

import (
	"context"
	"encoding/json"
	"io"
	"runtime"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// Run validates cfg, opens the socket (inside cfg.Netns when set) with its
// filter attached, writes the ready line to st.Stderr and captures until a
// stop condition. The returned stats are nil when the capture never started
// (a usage error, a missing interface, an invalid filter); the caller prints
// them as its last stderr line otherwise.
func Run(ctx context.Context, cfg Config, st Streams) (*protocol.Stats, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	src, info, err := Open(cfg)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	// One goroutine does the work; a second P only makes the runtime wake
	// another thread (to look for work that is not there) each time a
	// block arrives, which at line rate costs more CPU than it saves.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if err := WriteLine(st.Stderr, protocol.Ready{
		Type:      protocol.TypeReady,
		Interface: info.Interface,
		LinkType:  info.LinkType.String(),
		Snaplen:   cfg.Snaplen,
		Filter:    cfg.Filter,
		Format:    cfg.Format,
	}); err != nil {
		return nil, err
	}
	stats, err := Capture(ctx, src, info, cfg, st)
	if pf, ok := src.(interface{ PreFilterDropped() uint64 }); ok {
		stats.PreFilterDropped = pf.PreFilterDropped()
	}
	return &stats, err
}

// WriteLine writes v as one JSON line.
func WriteLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
