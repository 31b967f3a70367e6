package runner

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"jobrelay/worker-go/internal/clock"
	"jobrelay/worker-go/internal/contract"
)

// retryRenewal: after a failed renewal, try again after this long (or sooner, if the lease
// is nearly out).
const retryRenewal = 2 * time.Second

// renew pushes the claim's lease out by the lease period; errClaimLost if the claim is gone.
func (r *Runner) renew(ctx context.Context, claimed *contract.JobRecord) error {
	record, _, err := r.jobs.Update(ctx, claimed.ID, func(c *contract.JobRecord) (*contract.JobRecord, error) {
		if c.Status != contract.Running || c.Attempts != claimed.Attempts {
			return nil, errClaimLost
		}
		c.LeaseExpiresAt = contract.TimePtr(contract.At(time.Now().Add(r.settings.ClaimLease)))
		return c, nil
	})
	if err == nil && record == nil {
		return errClaimLost
	}
	return err
}

// keepClaim renews the lease every third of it while work runs, and stops the work if the
// claim is lost. A renewal that fails for a passing reason (the store restarting, a lost
// race) is tried again soon, until the lease would lapse: a worker that stopped renewing at
// the first error would let a healthy job be taken over and run twice. Only a claim that is
// really gone (cancelled, taken over) stops the work: its result would be discarded anyway.
func (r *Runner) keepClaim(work context.Context, claimed *contract.JobRecord, stop context.CancelCauseFunc) {
	expires := claimed.LeaseExpiresAt.Time
	pause := r.settings.ClaimLease / 3
	for {
		if clock.Sleep(work, pause) != nil {
			return
		}
		// Not the work's context: a renewal cut off as the work ends would read as lost.
		ctx, cancel := context.WithTimeout(context.Background(), max(time.Until(expires), time.Second))
		err := r.renew(ctx, claimed)
		cancel()
		switch {
		case errors.Is(err, errClaimLost):
			stop(errClaimLost)
			return
		case err != nil:
			left := time.Until(expires)
			slog.Warn("lease not renewed; trying again", "job_id", claimed.ID,
				"left_seconds", left.Seconds(), "error", err.Error())
			pause = max(min(retryRenewal, left/2), 50*time.Millisecond)
		default:
			expires = time.Now().Add(r.settings.ClaimLease)
			pause = r.settings.ClaimLease / 3
		}
	}
}
