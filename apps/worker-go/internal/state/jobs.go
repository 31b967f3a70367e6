package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"time"

	"jobrelay/worker-go/internal/contract"
)

// ErrStale: the record changed since it was read; read again and decide again.
var ErrStale = errors.New("jobs: the record changed since it was read")

// Versioned is a record and the ETag of the version it was read at.
type Versioned struct {
	Record *contract.JobRecord
	ETag   string
}

// JobChange answers the record to write for the current one, or nil to leave it; it may
// run once per lost race. An error it returns stops the update and is returned.
type JobChange func(current *contract.JobRecord) (*contract.JobRecord, error)

// Jobs keeps job records: one key per job holding all of it (src/jobrelay/store.py).
type Jobs struct {
	state            *State
	RetentionSeconds int
}

// NewJobs is the record store over s; terminal records live retentionSeconds.
func NewJobs(s *State, retentionSeconds int) *Jobs {
	return &Jobs{state: s, RetentionSeconds: retentionSeconds}
}

// State is the store the records live in, for the other keys a worker writes.
func (j *Jobs) State() *State { return j.state }

func decode(data []byte) (*contract.JobRecord, error) {
	var r contract.JobRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("a job record that does not parse: %w", err)
	}
	return &r, nil
}

func isTombstone(data []byte) bool {
	return bytes.Equal(bytes.TrimSpace(data), contract.Tombstone)
}

// Get is the job's record, or nil if there is none (or the key is fenced).
func (j *Jobs) Get(ctx context.Context, jobID string) (*Versioned, error) {
	item, err := j.state.Get(ctx, contract.JobKey(jobID))
	if err != nil || item == nil || isTombstone(item.Data) {
		return nil, err
	}
	r, err := decode(item.Data)
	if err != nil {
		return nil, err
	}
	return &Versioned{Record: r, ETag: item.ETag}, nil
}

// Replace overwrites the version etag names; ErrStale if another write came first. A
// record that becomes terminal takes its uploaded file with it.
func (j *Jobs) Replace(ctx context.Context, r *contract.JobRecord, etag string) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	err = j.state.Replace(ctx, contract.JobKey(r.ID), data, etag, j.ttl(r))
	if errors.Is(err, ErrConflict) {
		return ErrStale
	}
	if err == nil && r.Status.Terminal() && r.Input.File != nil {
		j.DeleteFile(ctx, r.ID, r.Input.File)
	}
	return err
}

// Update applies change to the current record until a guarded write of its answer goes
// through. It returns the record as it now stands (nil: no such job) and whether this call
// wrote it.
func (j *Jobs) Update(ctx context.Context, jobID string, change JobChange) (*contract.JobRecord, bool, error) {
	var seen, made *contract.JobRecord
	_, written, err := j.state.Update(ctx, contract.JobKey(jobID), func(data []byte) (*Write, error) {
		seen, made = nil, nil
		if data == nil || isTombstone(data) {
			return nil, nil
		}
		current, err := decode(data)
		if err != nil {
			return nil, err
		}
		seen = current
		next, err := change(current.Clone())
		if err != nil || next == nil {
			return nil, err
		}
		made = next
		encoded, err := json.Marshal(next)
		if err != nil {
			return nil, err
		}
		return &Write{Data: encoded, TTLSeconds: j.ttl(next)}, nil
	})
	if err != nil {
		return nil, false, err
	}
	record := seen
	if written {
		record = made
	}
	if written && record.Status.Terminal() && record.Input.File != nil {
		j.DeleteFile(ctx, record.ID, record.Input.File)
	}
	return record, written, nil
}

// Fence makes sure the job's record can never be stored from now on, unless it already is:
// the record, if intake stored it first; nil once the tombstone is in.
func (j *Jobs) Fence(ctx context.Context, jobID string) (*Versioned, error) {
	err := j.state.Insert(ctx, contract.JobKey(jobID), contract.Tombstone, contract.FenceTTLSeconds)
	if errors.Is(err, ErrKeyTaken) {
		return j.Get(ctx, jobID)
	}
	if err != nil {
		return nil, err
	}
	slog.Warn("fenced: its record never arrived; the job was not accepted", "job_id", jobID)
	return nil, nil
}

// chunksPerRead: upload chunks (1 MiB each, src/jobrelay/constants.py FILE_CHUNK_BYTES) read
// in one bulk call, keeping its answer within BULK_BYTES (2 MiB, src/jobrelay/state.py).
const chunksPerRead = 2

// ReadFile is an uploaded file's bytes; an error if a chunk is gone.
func (j *Jobs) ReadFile(ctx context.Context, ref *contract.FileRef) ([]byte, error) {
	keys := make([]string, ref.Chunks)
	for i := range keys {
		keys[i] = contract.FileChunkKey(ref.Key, i)
	}
	// A few chunks a call, as the Python worker reads them (src/jobrelay/files.py): daprd
	// refuses a gRPC message over 4 MiB, and an upload may be 10 MiB of 1 MiB chunks.
	found := make(map[string]*Item, len(keys))
	for start := 0; start < len(keys); start += chunksPerRead {
		part, err := j.state.GetMany(ctx, keys[start:min(start+chunksPerRead, len(keys))])
		if err != nil {
			return nil, err
		}
		maps.Copy(found, part)
	}
	var out []byte
	missing := 0
	for _, k := range keys {
		item, ok := found[k]
		if !ok {
			return nil, fmt.Errorf("chunk %s could not be read", k)
		}
		if item == nil {
			missing++
			continue
		}
		out = append(out, item.Data...)
	}
	if missing > 0 && ref.Size > 0 {
		return nil, &MissingFile{Key: ref.Key, Missing: missing, Chunks: ref.Chunks}
	}
	return out, nil
}

// MissingFile: chunks of an upload are gone (expired, or deleted with a finished job).
type MissingFile struct {
	Key             string
	Missing, Chunks int
}

func (e *MissingFile) Error() string {
	return fmt.Sprintf("%d of %d chunks of %s are missing", e.Missing, e.Chunks, e.Key)
}

// DeleteFile deletes an upload's chunks, best effort: a chunk left behind expires with its
// TTL. Only a worker reads the file, and no worker runs a finished job again.
func (j *Jobs) DeleteFile(ctx context.Context, jobID string, ref *contract.FileRef) {
	failed := 0
	for i := range ref.Chunks {
		if err := j.state.Delete(ctx, contract.FileChunkKey(ref.Key, i)); err != nil {
			failed++
		}
	}
	if failed > 0 {
		slog.Warn("chunks of an upload not deleted; they expire with their TTL",
			"job_id", jobID, "failed", failed, "chunks", ref.Chunks)
	}
}

// ttl: terminal records expire after the retention; live ones once the job could no longer
// run (its deadline, or the longest life a job has), plus the retention, so a job whose
// message was lost does not stay queued for ever.
func (j *Jobs) ttl(r *contract.JobRecord) int {
	if r.Status.Terminal() {
		return j.RetentionSeconds
	}
	end := r.CreatedAt.Add(contract.MaxJobLifetimeSeconds * time.Second)
	if r.Deadline != nil {
		end = r.Deadline.Time
	}
	return max(int(time.Until(end).Seconds()), 0) + j.RetentionSeconds
}

// AddDeadLetter lists jobID among its tenant's dead-lettered jobs (newest last, bounded),
// for the admin routes (src/jobrelay/dead_letters.py).
func (j *Jobs) AddDeadLetter(ctx context.Context, tenant, jobID string) error {
	_, _, err := j.state.Update(ctx, contract.DeadLettersKey(tenant), func(data []byte) (*Write, error) {
		var ids []string
		if data != nil {
			if err := json.Unmarshal(data, &ids); err != nil {
				return nil, err
			}
		}
		changed := make([]string, 0, len(ids)+1)
		for _, id := range ids {
			if id != jobID {
				changed = append(changed, id)
			}
		}
		changed = append(changed, jobID)
		if len(changed) > contract.DeadLetterIndexSize {
			changed = changed[len(changed)-contract.DeadLetterIndexSize:]
		}
		if len(ids) > 0 && ids[len(ids)-1] == jobID && len(changed) == len(ids) {
			return nil, nil // listed last already
		}
		encoded, err := json.Marshal(changed)
		if err != nil {
			return nil, err
		}
		return &Write{Data: encoded}, nil
	})
	return err
}
