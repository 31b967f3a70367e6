package models

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"

	"jobrelay/worker-go/internal/contract"
)

// CapabilityUnavailable: no configured model can do what the task needs, or this worker
// does not run the task at all. The contract's code for it is `capability_unavailable`.
type CapabilityUnavailable struct{ Reason string }

func (e *CapabilityUnavailable) Error() string { return e.Reason }

// BudgetSpent: the job has made as many model calls as one job may, over all its attempts.
type BudgetSpent struct{ Calls int }

func (e *BudgetSpent) Error() string {
	return fmt.Sprintf("the job made the most model calls one job may make (%d in this attempt; "+
		"JOBRELAY_WORKER_MAX_MODEL_CALLS_PER_JOB)", e.Calls)
}

// Limits are the per-profile limits shared with every worker replica, in any language.
type Limits interface {
	// Admit counts one request of about `tokens` tokens against the profile's per-minute
	// limits, waiting (never past the deadline) while they are spent.
	Admit(ctx context.Context, p *Profile, tokens int, deadline *time.Time) error
	// Slot holds one of the profile's shared concurrency slots until release is called.
	Slot(ctx context.Context, p *Profile, deadline *time.Time) (release func(), err error)
}

// Gateway is every model call of this worker: the fallback list, the retries, this
// process's in-flight limit and the shared limits.
type Gateway struct {
	Catalog  *Catalog
	http     *http.Client
	limits   Limits
	inflight *FairGate
	labels   *labelCache
}

// NewGateway calls the catalog's profiles, at most maxInflight calls at once in this process.
func NewGateway(c *Catalog, limits Limits, maxInflight int) *Gateway {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = maxInflight * 2
	return &Gateway{
		Catalog:  c,
		http:     &http.Client{Transport: transport},
		limits:   limits,
		inflight: NewFairGate(maxInflight),
		labels:   newLabelCache(labelCacheSize),
	}
}

// Embedding is one embeddings answer: unit vectors in input order.
type Embedding struct {
	Vectors [][]float32
	Usage   contract.Usage
	Model   string
}

// Job is one delivery's view of the models: it carries the job's task, deadline, attempt
// and budget, and collects every call for the job's record.
type Job struct {
	gateway *Gateway
	task    string
	tenant  string
	// Priority orders this job's wait for the worker's in-flight limit (FairGate), with tenant.
	Priority contract.Priority
	deadline *time.Time
	attempt  int
	budget   int // model calls this attempt may still make
	mu       sync.Mutex
	Calls    []contract.ModelCall
	// Every embedding of one job comes from one model: a text and its labels compared
	// across two models would be meaningless. The first call picks; later calls stay.
	embedder *Profile
}

// ForJob is the models as one attempt of a job sees them.
func (g *Gateway) ForJob(task, tenant string, deadline *time.Time, attempt, budget int) *Job {
	return &Job{gateway: g, task: task, tenant: tenant, deadline: deadline, attempt: attempt, budget: budget}
}

// CallsMade is a copy of the calls so far, for the record.
func (j *Job) CallsMade() []contract.ModelCall {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]contract.ModelCall(nil), j.Calls...)
}

// Embed is the unit vectors of texts from the first profile of the task's list that answers.
func (j *Job) Embed(ctx context.Context, texts []string) (*Embedding, error) {
	chain := j.gateway.Catalog.Chain(j.task, Embeddings)
	if j.embedder != nil {
		chain = []*Profile{j.embedder}
	}
	if len(chain) == 0 {
		return nil, &CapabilityUnavailable{Reason: j.task + " needs a model for embeddings, and no " +
			"profile for it has that capability: add one to the task's list in the models file " +
			"(JOBRELAY_WORKER_MODELS_FILE; see config/models.example.yaml)"}
	}
	var last error
	for _, p := range chain {
		answer, err := j.onProfile(ctx, p, texts)
		if err == nil {
			j.embedder = p
			return answer, nil
		}
		if VerdictOf(err) == Fatal {
			return nil, err
		}
		last = err
		slog.Warn("model profile gave up; trying the next model", "profile", p.Name, "error", err.Error())
	}
	return nil, last
}

// onProfile is the retry loop for calls to one profile.
func (j *Job) onProfile(ctx context.Context, p *Profile, texts []string) (*Embedding, error) {
	opts := []backoff.RetryOption{
		backoff.WithBackOff(newBackOff()),
		backoff.WithMaxTries(uint(p.MaxAttempts)),
		backoff.WithMaxElapsedTime(0),
	}
	if j.deadline != nil {
		// Never sleep into the deadline: the caller moves on (or the job ends) instead.
		opts[2] = backoff.WithMaxElapsedTime(time.Until(*j.deadline))
	}
	return backoff.Retry(ctx, func() (*Embedding, error) {
		if len(j.CallsMade()) >= j.budget {
			return nil, backoff.Permanent(&BudgetSpent{Calls: len(j.CallsMade())})
		}
		answer, err := j.once(ctx, p, texts)
		if err != nil && VerdictOf(err) != Retry {
			return nil, backoff.Permanent(err)
		}
		return answer, err
	}, opts...)
}

// once is one call: the rate limit first (a call waiting for the next minute holds no slot),
// then this worker's own slot, then the one shared with every replica, each held only
// around the call itself.
func (j *Job) once(ctx context.Context, p *Profile, texts []string) (*Embedding, error) {
	g := j.gateway
	tokens := estimateTokens(texts)
	if err := g.limits.Admit(ctx, p, tokens, j.deadline); err != nil {
		return nil, err
	}
	if err := g.inflight.Acquire(ctx, j.Priority, j.tenant); err != nil {
		return nil, err
	}
	defer g.inflight.Release()
	release, err := g.limits.Slot(ctx, p, j.deadline)
	if err != nil {
		return nil, err
	}
	defer release()
	return j.timed(ctx, p, texts)
}

func (j *Job) timed(ctx context.Context, p *Profile, texts []string) (*Embedding, error) {
	timeout := time.Duration(p.TimeoutSeconds * float64(time.Second))
	if j.deadline != nil {
		timeout = max(min(timeout, time.Until(*j.deadline)), time.Millisecond)
	}
	started, clock := contract.Now(), time.Now()
	answer, err := j.gateway.post(ctx, p, texts, timeout)
	call := contract.ModelCall{
		Profile: p.Name, Model: p.Model, Attempt: j.attempt, StartedAt: started,
		Seconds: time.Since(clock).Seconds(),
	}
	if err != nil {
		msg := err.Error()
		if len(msg) > 500 {
			msg = msg[:500]
		}
		call.Error = &msg
		var se *StatusError
		if errors.As(err, &se) {
			call.StatusCode = &se.StatusCode
		}
	}
	j.mu.Lock()
	j.Calls = append(j.Calls, call)
	j.mu.Unlock()
	return answer, err
}

// embeddingsURL and the key header for the profile's API flavour.
func (p *Profile) endpoint() (string, string) {
	if p.Kind == "azure" {
		u := fmt.Sprintf("%s/openai/deployments/%s/embeddings?api-version=%s",
			strings.TrimRight(p.BaseURL, "/"), url.PathEscape(p.AzureDeployment), url.QueryEscape(p.APIVersion))
		return u, "api-key"
	}
	return strings.TrimRight(p.BaseURL, "/") + "/embeddings", "Authorization"
}

type embeddingsAnswer struct {
	Data []struct {
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Model string `json:"model"`
	Usage *struct {
		PromptTokens int  `json:"prompt_tokens"`
		TotalTokens  *int `json:"total_tokens"`
	} `json:"usage"`
}

func (g *Gateway) post(ctx context.Context, p *Profile, texts []string, timeout time.Duration) (*Embedding, error) {
	key, err := p.APIKey()
	if err != nil {
		return nil, err
	}
	body, _ := json.Marshal(map[string]any{"model": p.Model, "input": texts, "encoding_format": "base64"})
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	target, header := p.endpoint()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	if header == "Authorization" {
		req.Header.Set(header, "Bearer "+key)
	} else {
		req.Header.Set(header, key)
	}
	resp, err := g.http.Do(req)
	if err != nil {
		var netErr net.Error
		timedOut := errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout())
		if parent := context.Cause(ctx); parent != nil && !errors.Is(parent, context.DeadlineExceeded) {
			return nil, parent // the job was stopped: not the backend's trouble
		}
		if timedOut {
			return nil, &TransportError{Err: errors.New("the model did not answer in time"), Timeout: true}
		}
		return nil, &TransportError{Err: fmt.Errorf("model unreachable: %w", err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, &TransportError{Err: fmt.Errorf("model answer cut off: %w", err)}
	}
	if resp.StatusCode/100 != 2 {
		return nil, statusError(resp, raw)
	}
	return decodeEmbeddings(raw, p, len(texts))
}

func statusError(resp *http.Response, raw []byte) *StatusError {
	se := &StatusError{StatusCode: resp.StatusCode, Message: strings.TrimSpace(string(raw))}
	var body struct {
		Error *struct {
			Message string `json:"message"`
			Code    any    `json:"code"`
		} `json:"error"`
	}
	if json.Unmarshal(raw, &body) == nil && body.Error != nil {
		se.Message = body.Error.Message
		if code, ok := body.Error.Code.(string); ok {
			se.Code = code
		}
	}
	if len(se.Message) > 300 {
		se.Message = se.Message[:300]
	}
	se.RetryAfter = min(RetryAfter(resp.Header, time.Now()), MaxRetryAfter)
	return se
}

// decodeEmbeddings reads an OpenAI embeddings answer: vectors in input order, as base64
// little-endian float32s or as floats (a backend may answer floats whatever was asked),
// made unit length so a dot product is cosine similarity whatever the backend.
func decodeEmbeddings(raw []byte, p *Profile, want int) (*Embedding, error) {
	var a embeddingsAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		return nil, fmt.Errorf("embeddings answer that does not parse: %w", err)
	}
	if len(a.Data) != want {
		return nil, fmt.Errorf("embeddings answer has %d vectors for %d texts", len(a.Data), want)
	}
	out := &Embedding{Vectors: make([][]float32, want), Model: a.Model}
	if out.Model == "" {
		out.Model = p.Model
	}
	for _, d := range a.Data {
		if d.Index < 0 || d.Index >= want {
			return nil, fmt.Errorf("embeddings answer has index %d", d.Index)
		}
		v, err := vector(d.Embedding)
		if err != nil {
			return nil, err
		}
		out.Vectors[d.Index] = unit(v)
	}
	if a.Usage != nil {
		out.Usage.PromptTokens = a.Usage.PromptTokens
		out.Usage.TotalTokens = a.Usage.PromptTokens
		if a.Usage.TotalTokens != nil {
			out.Usage.TotalTokens = *a.Usage.TotalTokens
		}
	}
	return out, nil
}

func vector(raw json.RawMessage) ([]float32, error) {
	var encoded string
	if json.Unmarshal(raw, &encoded) == nil {
		b, err := base64.StdEncoding.DecodeString(encoded)
		if err != nil || len(b)%4 != 0 {
			return nil, fmt.Errorf("embedding is not base64 float32s")
		}
		v := make([]float32, len(b)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v, nil
	}
	var floats []float32
	if err := json.Unmarshal(raw, &floats); err != nil {
		return nil, fmt.Errorf("embedding is neither base64 nor a list of numbers: %w", err)
	}
	return floats, nil
}

func unit(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	norm := max(math.Sqrt(sum), 1e-12)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / norm)
	}
	return out
}

// estimateTokens: about four characters a token, close enough for per-minute budgets.
func estimateTokens(texts []string) int {
	n := 0
	for _, t := range texts {
		n += len(t)
	}
	return n/4 + 1
}
