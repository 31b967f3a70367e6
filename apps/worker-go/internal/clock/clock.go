// Package clock holds the one wait every part of the worker uses: a sleep that ends early,
// with the context's cause, when the job's context is done (a cancel, a deadline, a stop).
package clock

import (
	"context"
	"time"
)

// Sleep waits d, or until ctx is done; then it returns context.Cause(ctx).
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
