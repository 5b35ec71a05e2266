package dnsprobe

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/kubectl-netdiag/kubectl-netdiag/pkg/protocol"
)

// LoadRetry is glibc's default timeout: a lookup that lost a query waits
// this long before it asks again (kubernetes#56903's 5 s delays).
const LoadRetry = 5 * time.Second

// maxLoadSockets bounds the lookups in flight (each holds a socket).
const maxLoadSockets = 256

// lookupResult is one --load lookup.
type lookupResult struct {
	answered, retried, unsent bool
	latency                   time.Duration
}

// lookupAAndAAAA sends the A and AAAA queries for name back to back from
// one UDP socket, as glibc does, and waits for both answers. A query
// still unanswered after retry is sent again on the same socket, once
// (glibc's second attempt); the lookup fails when an answer is still
// missing after that.
func lookupAAndAAAA(ctx context.Context, lim *limiter, addr, name string, retry time.Duration) lookupResult {
	var res lookupResult
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return res
	}
	defer conn.Close()
	var wire [2][]byte
	ids := map[uint16]int{}
	for i, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		m := new(dns.Msg)
		m.SetQuestion(name, t)
		m.RecursionDesired = true
		if wire[i], err = m.Pack(); err != nil {
			return res
		}
		ids[m.Id] = i
	}
	if len(ids) != 2 { // the same random id twice: the answers could not be told apart
		return lookupAAndAAAA(ctx, lim, addr, name, retry)
	}
	got := [2]bool{}
	var start time.Time
	send := func() bool {
		missing := 0
		for i := range wire {
			if !got[i] {
				missing++
			}
		}
		// the tokens first, so that the queries leave back to back
		if lim.waitN(ctx, missing) != nil {
			return false
		}
		if start.IsZero() {
			start = time.Now()
		}
		for i := range wire {
			if got[i] {
				continue
			}
			if _, err := conn.Write(wire[i]); err != nil {
				return false
			}
		}
		return true
	}
	buf := make([]byte, dns.MaxMsgSize)
	for attempt := 0; attempt < 2; attempt++ {
		if attempt > 0 {
			res.retried = true
		}
		if !send() {
			if attempt == 0 {
				res.unsent = ctx.Err() != nil
			}
			return res
		}
		deadline := time.Now().Add(retry)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = conn.SetReadDeadline(deadline)
		for !got[0] || !got[1] {
			n, err := conn.Read(buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
					break // retry
				}
				return res
			}
			var r dns.Msg
			if r.Unpack(buf[:n]) != nil {
				continue
			}
			if i, ok := ids[r.Id]; ok {
				got[i] = true
			}
		}
		if got[0] && got[1] {
			res.answered = true
			res.latency = time.Since(start)
			return res
		}
	}
	return res
}

// runLoad runs n lookups of name at the server, as many in flight as the
// rate allows, and sums them up.
func runLoad(ctx context.Context, lim *limiter, server protocol.DNSServer, name string, n int, retry time.Duration) protocol.DNSLoad {
	out := protocol.DNSLoad{Type: protocol.TypeDNSLoad, Hop: server.Hop, Server: server.HostPort(), Name: name, Lookups: n}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	sem := make(chan struct{}, maxLoadSockets)
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			mu.Lock()
			out.Unsent++
			out.Failed++
			mu.Unlock()
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			r := lookupAAndAAAA(ctx, lim, server.HostPort(), name, retry)
			mu.Lock()
			defer mu.Unlock()
			if r.retried {
				out.Retried++
			}
			switch {
			case r.answered:
				out.Answered++
				latencies = append(latencies, r.latency)
				if r.latency >= retry {
					out.Slow5s++
				}
			case r.unsent:
				out.Unsent++
				out.Failed++
			default:
				out.Failed++
			}
		}()
	}
	wg.Wait()
	slices.Sort(latencies)
	if len(latencies) > 0 {
		out.P50Ms = percentile(latencies, 50).Milliseconds()
		out.P99Ms = percentile(latencies, 99).Milliseconds()
		out.MaxMs = latencies[len(latencies)-1].Milliseconds()
	}
	return out
}

// percentile of sorted values, nearest rank.
func percentile(sorted []time.Duration, p int) time.Duration {
	i := (p*len(sorted)+99)/100 - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
