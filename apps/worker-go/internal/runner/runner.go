// Package runner is one delivery of a job: wait for its record, claim it, run its task,
// store the outcome. It is the protocol of apps/worker/runner.py, step for step, so that a
// Go worker and a Python worker may take deliveries from one topic side by side:
//
//   - The claim is an ETag-guarded write of `running` with `attempts` raised by one;
//     `attempts` is then the claim's token. Every later write goes through the state
//     layer's read-modify-write and only if the record still shows this claim, so a
//     duplicate delivery, a takeover, a cancel or a late result can never overwrite a
//     newer state, whichever worker wrote it.
//   - A claim is a lease, renewed while the job runs (lease.go); a lapsed one is taken over
//     by the next delivery. A second delivery of a job whose claim is alive is held, not
//     acknowledged: should the running worker die, that delivery resumes the job.
//   - Intake publishes a job's message before it stores the record, so a message may
//     arrive first: the delivery waits for the record until the message's grace ends, then
//     fences the job's key, and a record that comes later can never be stored.
package runner

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	dapr "github.com/dapr/go-sdk/client"

	"jobrelay/worker-go/internal/clock"
	"jobrelay/worker-go/internal/contract"
	"jobrelay/worker-go/internal/logs"
	"jobrelay/worker-go/internal/models"
	"jobrelay/worker-go/internal/state"
	"jobrelay/worker-go/internal/tasks"
)

// Delivery is what the worker answers Dapr about a message.
type Delivery int

const (
	Success Delivery = iota // done with it (a duplicate that needs nothing included)
	Retry                   // deliver again later, per the resiliency policy
	Drop                    // unusable: to the dead-letter topic
)

func (d Delivery) String() string { return [...]string{"SUCCESS", "RETRY", "DROP"}[d] }

// Settings are the worker's protocol timings (apps/worker/settings.py, same env names).
type Settings struct {
	ClaimLease          time.Duration
	DuplicateHold       time.Duration
	ArrivalGrace        time.Duration
	MaxModelCallsPerJob int
}

// First pause before reading again for a record that is not there yet: it normally
// follows its message within milliseconds, so the pauses start short and double.
const (
	firstReread = 2 * time.Millisecond
	maxReread   = 500 * time.Millisecond
	// maxTextRunes: a text task reads at most this much of an uploaded document.
	maxTextRunes = 200_000
)

// documentTypes are the uploads the Python worker reads as documents before a text task
// (src/jobrelay/inputs.py DOCUMENT_FILE_TYPES): PDFs and images.
var documentTypes = map[string]bool{
	"application/pdf": true, "image/png": true, "image/jpeg": true, "image/tiff": true, "image/webp": true,
}

var (
	errClaimLost = errors.New("the claim was lost (taken over or cancelled)")
	// ErrStopping is the cause the worker cancels its work with when it stops.
	ErrStopping = errors.New("the worker is stopping")
	errDeadline = errors.New("the job's deadline passed during the call")
)

// Runner runs the deliveries of one worker process.
type Runner struct {
	jobs     *state.Jobs
	dapr     state.Dapr
	gateway  *models.Gateway
	settings Settings
	// Name is written on every claim: which worker ran the job, when workers in several
	// languages share the topic.
	Name string
	// stopping is cancelled when the worker stops: jobs still running are handed back.
	stopping context.Context
	wg       sync.WaitGroup
}

// New is a runner whose work stops (and hands jobs back) when stopping is cancelled.
func New(stopping context.Context, jobs *state.Jobs, d state.Dapr, g *models.Gateway, s Settings) *Runner {
	return &Runner{jobs: jobs, dapr: d, gateway: g, settings: s, Name: "go/" + ReplicaID(), stopping: stopping}
}

// ReplicaID is this process's name among the workers: `worker-` and 12 hex digits, as the
// Python services name their replicas (jobrelay.events.new_replica_id).
func ReplicaID() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "worker-" + hex.EncodeToString(b)
}

// Wait blocks until every background publish has ended.
func (r *Runner) Wait() { r.wg.Wait() }

// Deliver handles one message of the `jobs` topic.
func (r *Runner) Deliver(ctx context.Context, msg contract.JobMessage) (Delivery, error) {
	versioned, err := r.arrived(ctx, msg)
	if err != nil || versioned == nil {
		return Success, err
	}
	holdUntil := time.Now().Add(r.settings.DuplicateHold)
	for {
		claimed, err := r.claim(ctx, versioned)
		var live *liveClaim
		switch {
		case errors.Is(err, state.ErrStale):
		case errors.As(err, &live):
			// Held, not acknowledged: if the running worker dies, this copy resumes the
			// job once the lease lapses. Past the hold, the broker keeps it.
			if !time.Now().Before(holdUntil) {
				return Retry, nil
			}
			if err := clock.Sleep(ctx, min(5*time.Second, r.settings.ClaimLease/4)); err != nil {
				return Retry, nil
			}
		case err != nil:
			return Retry, err
		case claimed == nil:
			return Success, nil
		default:
			r.inBackground(claimed)
			return r.run(ctx, claimed)
		}
		if versioned, err = r.jobs.Get(ctx, msg.JobID); err != nil || versioned == nil {
			return Success, err
		}
	}
}

// arrived is the job's record, waited for while the message's grace lasts; nil if there
// is none to run (fenced now, or gone: expired long after its job ended).
func (r *Runner) arrived(ctx context.Context, msg contract.JobMessage) (*state.Versioned, error) {
	graceEnds := msg.SentAt.Add(r.settings.ArrivalGrace)
	pause := firstReread
	for {
		versioned, err := r.jobs.Get(ctx, msg.JobID)
		if err != nil || versioned != nil {
			return versioned, err
		}
		left := time.Until(graceEnds)
		if left <= 0 {
			// Either the record arrives now and wins the key, or the tombstone does and
			// intake's store of it fails: never both, never neither.
			return r.jobs.Fence(ctx, msg.JobID)
		}
		if err := clock.Sleep(ctx, min(pause, left)); err != nil {
			return nil, err
		}
		pause = min(pause*2, maxReread)
	}
}

type liveClaim struct{ jobID string }

func (e *liveClaim) Error() string { return "job " + e.jobID + " has a live claim elsewhere" }

// claim is the record, now running under this delivery; nil if there is nothing to run.
func (r *Runner) claim(ctx context.Context, v *state.Versioned) (*contract.JobRecord, error) {
	record, now := v.Record, contract.Now()
	if record.Status.Terminal() {
		slog.Info("already final; duplicate delivery acknowledged", "job_id", record.ID, "status", record.Status)
		return nil, nil
	}
	if record.Status == contract.Running && record.LeaseExpiresAt != nil && record.LeaseExpiresAt.After(now.Time) {
		slog.Info("a live claim elsewhere; holding this delivery", "job_id", record.ID)
		return nil, &liveClaim{record.ID}
	}
	if record.Deadline != nil && !now.Before(record.Deadline.Time) {
		ended, err := pastDeadline(record)
		if err != nil {
			return nil, err
		}
		if err := r.jobs.Replace(ctx, ended, v.ETag); err != nil {
			return nil, err
		}
		return nil, r.changed(ctx, ended)
	}
	claimed, err := record.MovedTo(contract.Running, func(c *contract.JobRecord) {
		c.Attempts = record.Attempts + 1
		c.StartedAt = contract.TimePtr(now)
		c.LeaseExpiresAt = contract.TimePtr(contract.At(now.Add(r.settings.ClaimLease)))
		c.Worker = &r.Name
		// Queue wait is measured to the first start: the wait before a retry is the
		// backend's trouble, and shows in model_calls instead.
		if record.Attempts == 0 {
			waited := now.Sub(record.CreatedAt.Time).Seconds()
			c.QueueSeconds = &waited
		}
	})
	if err != nil {
		return nil, err
	}
	if err := r.jobs.Replace(ctx, claimed, v.ETag); err != nil {
		return nil, err
	}
	return claimed, nil
}

func (r *Runner) run(ctx context.Context, claimed *contract.JobRecord) (Delivery, error) {
	task, ok := tasks.Runners[claimed.Task]
	if !ok {
		return r.failed(ctx, claimed, &models.CapabilityUnavailable{Reason: unimplemented(claimed.Task)}, nil)
	}
	spent := len(claimed.ModelCalls) - claimed.BudgetStart
	var deadline *time.Time
	if claimed.Deadline != nil {
		deadline = &claimed.Deadline.Time
	}
	calls := r.gateway.ForJob(claimed.Task, claimed.Tenant, deadline, claimed.Attempts,
		r.settings.MaxModelCallsPerJob-spent)
	calls.Priority = claimed.Priority // its place in the wait for a model call (FairGate)

	work, stop := context.WithCancelCause(r.stopping)
	defer stop(nil)
	if deadline != nil {
		var cancel context.CancelFunc
		work, cancel = context.WithDeadlineCause(work, *deadline, errDeadline)
		defer cancel()
	}
	kept := make(chan struct{})
	go func() {
		defer close(kept)
		r.keepClaim(work, claimed, stop)
	}()
	result, err := r.call(work, task, claimed, calls)
	stop(nil)
	<-kept
	cause := context.Cause(work)
	switch {
	case err == nil:
	case errors.Is(cause, ErrStopping) || (r.stopping.Err() != nil && !errors.Is(cause, errClaimLost)):
		// This worker is stopping: hand the job back so the broker's redelivery runs it
		// at once, without waiting for the lease.
		r.handBack(claimed, calls.CallsMade())
		return Retry, nil
	case errors.Is(cause, errClaimLost):
		slog.Warn("lost its claim mid-call; model call stopped", "job_id", claimed.ID)
		return Success, nil
	case errors.Is(cause, errDeadline):
		err = &deadlinePassed{deadline: claimed.Deadline.Time}
		return r.failed(ctx, claimed, err, calls.CallsMade())
	default:
		return r.failed(ctx, claimed, err, calls.CallsMade())
	}
	done := func(c *contract.JobRecord) (*contract.JobRecord, error) {
		return c.MovedTo(contract.Succeeded, func(c *contract.JobRecord) { c.Result, c.Error = result, nil })
	}
	if _, err := r.finish(ctx, claimed, done, calls.CallsMade()); err != nil {
		return Retry, err
	}
	return Success, nil
}

// call runs the task on the job's text (an uploaded document read as UTF-8).
func (r *Runner) call(ctx context.Context, task tasks.Runner, claimed *contract.JobRecord, calls *models.Job) (*contract.JobResult, error) {
	text, err := r.text(ctx, claimed)
	if err != nil {
		return nil, err
	}
	return task(ctx, text, claimed, calls)
}

// unreadableInput: the uploaded file is not what the task reads (`invalid_input`).
type unreadableInput struct{ reason string }

func (e *unreadableInput) Error() string { return e.reason }

func (r *Runner) text(ctx context.Context, claimed *contract.JobRecord) (string, error) {
	ref := claimed.Input.File
	if ref == nil {
		if claimed.Input.Text == nil || *claimed.Input.Text == "" {
			return "", fmt.Errorf("%s needs text input", claimed.Task)
		}
		return *claimed.Input.Text, nil
	}
	name := "the file"
	if ref.Filename != nil {
		name = *ref.Filename
	}
	if documentTypes[ref.ContentType] {
		// The Python worker reads these first (apps/worker/reading: OCR with tesseract, a
		// PDF's text with poppler); this one has no reader, and cannot hand the message
		// back to the group (failures.go), so the job fails with the contract's code.
		return "", &models.CapabilityUnavailable{Reason: unreadDocument(claimed.Task, name, ref.ContentType)}
	}
	content, err := r.jobs.ReadFile(ctx, ref)
	if err != nil {
		return "", err
	}
	if !utf8.Valid(content) {
		return "", &unreadableInput{name + " is not UTF-8 text"}
	}
	text := string(content)
	if utf8.RuneCountInString(text) > maxTextRunes {
		text = string([]rune(text)[:maxTextRunes])
	}
	if strings.TrimSpace(text) == "" {
		return "", &unreadableInput{name + " has no text"}
	}
	return text, nil
}

func (r *Runner) handBack(claimed *contract.JobRecord, calls []contract.ModelCall) {
	// Its own context: the worker's is cancelled, and this write is what spares the job
	// a wait for its lease.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	back := func(c *contract.JobRecord) (*contract.JobRecord, error) {
		return c.MovedTo(contract.Queued, func(c *contract.JobRecord) {
			c.Error = &contract.JobError{Code: "worker_stopped",
				Message: "the worker stopped while running the job; it will run again", Retryable: true}
			c.LeaseExpiresAt = nil
		})
	}
	handed, err := r.finish(ctx, claimed, back, calls)
	slog.Warn("handed back: the worker is stopping", "job_id", claimed.ID, "handed", handed, "error", errString(err))
}

func (r *Runner) failed(ctx context.Context, claimed *contract.JobRecord, cause error, calls []contract.ModelCall) (Delivery, error) {
	jobErr := Describe(cause)
	var budget *models.BudgetSpent
	if errors.As(cause, &budget) {
		jobErr = budgetSpent(claimed, calls)
	}
	slog.Warn("attempt failed", "job_id", claimed.ID, "task", claimed.Task, "attempt", claimed.Attempts,
		"code", jobErr.Code, "retryable", jobErr.Retryable, "error", jobErr.Message)
	next := contract.Failed
	if jobErr.Retryable {
		// Back to queued with the error kept, so the redelivery can claim it again and a
		// dead-lettered job still says what went wrong last.
		next = contract.Queued
	}
	ended, err := r.finish(ctx, claimed, func(c *contract.JobRecord) (*contract.JobRecord, error) {
		return c.MovedTo(next, func(c *contract.JobRecord) { c.Error, c.LeaseExpiresAt = jobErr, nil })
	}, calls)
	if err != nil {
		return Retry, err
	}
	if ended && budget != nil {
		// Given up as the dead letter would give it up: listed for the operator too.
		if err := r.jobs.AddDeadLetter(ctx, claimed.Tenant, claimed.ID); err != nil {
			return Retry, err
		}
	}
	if jobErr.Retryable {
		return Retry, nil
	}
	return Success, nil
}

// finish applies change (and records this attempt's model calls) if the record still shows
// this claim; false if the claim was lost (taken over, or cancelled while the model ran:
// the outcome is then discarded).
func (r *Runner) finish(ctx context.Context, claimed *contract.JobRecord, change state.JobChange, calls []contract.ModelCall) (bool, error) {
	record, written, err := r.jobs.Update(ctx, claimed.ID, func(c *contract.JobRecord) (*contract.JobRecord, error) {
		if c.Status != contract.Running || c.Attempts != claimed.Attempts {
			return nil, nil
		}
		next, err := change(c)
		if err != nil {
			return nil, err
		}
		return withCalls(next, calls), nil
	})
	if err != nil {
		return false, err
	}
	if !written {
		now := "gone"
		if record != nil {
			now = string(record.Status)
		}
		slog.Warn("lost its claim; outcome discarded", "job_id", claimed.ID, "attempt", claimed.Attempts, "now", now)
		return false, nil
	}
	return true, r.changed(ctx, record)
}

func withCalls(r *contract.JobRecord, calls []contract.ModelCall) *contract.JobRecord {
	if len(calls) == 0 {
		return r
	}
	spent := 0.0
	if r.ModelSeconds != nil {
		spent = *r.ModelSeconds
	}
	for _, c := range calls {
		spent += c.Seconds
	}
	r.ModelCalls = append(r.ModelCalls, calls...)
	r.ModelSeconds = &spent
	return r
}

func budgetSpent(claimed *contract.JobRecord, calls []contract.ModelCall) *contract.JobError {
	spent := len(claimed.ModelCalls) - claimed.BudgetStart + len(calls)
	msg := fmt.Sprintf("stopped after %d model calls, the most one job may make "+
		"(JOBRELAY_WORKER_MAX_MODEL_CALLS_PER_JOB)", spent)
	all := append(append([]contract.ModelCall(nil), claimed.ModelCalls...), calls...)
	for i := len(all) - 1; i >= 0; i-- {
		if all[i].Error != nil {
			msg += "; last error: " + *all[i].Error
			break
		}
	}
	return &contract.JobError{Code: "model_call_budget_exhausted", Message: msg, Retryable: false}
}

func pastDeadline(r *contract.JobRecord) (*contract.JobRecord, error) {
	if r.Attempts == 0 {
		return r.MovedTo(contract.Expired, nil)
	}
	return r.MovedTo(contract.Failed, func(c *contract.JobRecord) {
		c.Error = &contract.JobError{Code: "deadline_exceeded", Retryable: false,
			Message: fmt.Sprintf("deadline %s passed before the job could finish", r.Deadline.Format(time.RFC3339Nano))}
	})
}

// GiveUp marks a dead-lettered job failed with the last error it recorded; the failed
// record, or nil if it was not left to fail (gone, already final, or still running under a
// live claim).
func (r *Runner) GiveUp(ctx context.Context, jobID string) (*contract.JobRecord, error) {
	record, written, err := r.jobs.Update(ctx, jobID, func(c *contract.JobRecord) (*contract.JobRecord, error) {
		if c.Status.Terminal() {
			return nil, nil
		}
		if c.Status == contract.Running && c.LeaseExpiresAt != nil && c.LeaseExpiresAt.After(time.Now()) {
			return nil, nil // a held duplicate gave up waiting while the job runs: its worker ends it
		}
		jobErr := &contract.JobError{Code: "retries_exhausted", Retryable: true,
			Message: fmt.Sprintf("gave up after %d attempt(s)", c.Attempts)}
		if c.Error != nil {
			jobErr.Code = c.Error.Code
			jobErr.Message += "; last error: " + c.Error.Message
		}
		return c.MovedTo(contract.Failed, func(c *contract.JobRecord) { c.Error = jobErr })
	})
	if errors.Is(err, state.ErrContended) {
		return nil, nil
	}
	if err != nil || !written {
		return nil, err
	}
	return record, r.changed(ctx, record)
}

// DeadLetter handles one message of `jobs-dead`: list the job for the operator first, then
// fail it. Listed first: should the failing write or the process fail next, the
// redelivery finds the job listed already (listing twice is harmless), and a job is never
// failed without its operator hearing of it.
func (r *Runner) DeadLetter(ctx context.Context, msg contract.JobMessage) (Delivery, error) {
	v, err := r.jobs.Get(ctx, msg.JobID)
	if err != nil {
		return Retry, err
	}
	if v == nil || v.Record.Status.Terminal() {
		return Success, nil
	}
	if err := r.jobs.AddDeadLetter(ctx, v.Record.Tenant, msg.JobID); err != nil {
		return Retry, err
	}
	if _, err := r.GiveUp(ctx, msg.JobID); err != nil {
		return Retry, err
	}
	return Success, nil
}

// changed: the record was just written with a new status; log it and tell whoever waits
// on it (src/jobrelay/events.py). Watchers hear best effort (they reread the record when
// idle); a webhook's event is published before the delivery is acknowledged, so it is
// never lost to a crash.
func (r *Runner) changed(ctx context.Context, record *contract.JobRecord) error {
	logs.Transition(record)
	if len(record.Watchers) > 0 {
		if err := r.publish(ctx, contract.EventsPubSub, contract.JobEventsTopic, record); err != nil {
			slog.Warn("job event not published", "job_id", record.ID, "status", record.Status, "error", err.Error())
		}
	}
	if contract.WantsWebhook(record) {
		return r.publish(ctx, contract.PubSub, contract.WebhookEventsTopic, record)
	}
	return nil
}

func (r *Runner) publish(ctx context.Context, pubsub, topic string, record *contract.JobRecord) error {
	data, err := jsonOf(contract.EventOf(record))
	if err != nil {
		return err
	}
	return r.dapr.PublishEvent(ctx, pubsub, topic, data, dapr.PublishEventWithContentType("application/json"))
}

// inBackground tells of a claim without holding up the model call.
func (r *Runner) inBackground(claimed *contract.JobRecord) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := r.changed(ctx, claimed); err != nil {
			slog.Error("job event not published", "job_id", claimed.ID, "error", err.Error())
		}
	}()
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
