package dnsprobe

import (
	"context"

	"golang.org/x/time/rate"
)

// limiter is the run's token bucket: at most Rate queries a second, every
// query of the run (probes, --load, retries) taking one token. The burst
// is two, a --load lookup's A and AAAA, which must leave back to back:
// queries are spread evenly over each second.
type limiter struct{ l *rate.Limiter }

func newLimiter(perSecond int) *limiter {
	return &limiter{rate.NewLimiter(rate.Limit(perSecond), 2)}
}

// wait takes one token.
func (l *limiter) wait(ctx context.Context) error { return l.l.Wait(ctx) }

// waitN takes n tokens at once (n ≤ 2).
func (l *limiter) waitN(ctx context.Context, n int) error { return l.l.WaitN(ctx, n) }
