// Package tasks is what the Go worker runs for each task name it implements: classify and
// embed, the embedding tasks, with the recipes of apps/worker/tasks (same output shape, same
// maths), so a job's result does not depend on which worker ran it.
package tasks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"

	"jobrelay/worker-go/internal/contract"
	"jobrelay/worker-go/internal/models"
)

// Runner runs one task on a job whose input is text.
type Runner func(ctx context.Context, text string, r *contract.JobRecord, m *models.Job) (*contract.JobResult, error)

// Runners are the tasks this worker implements. Any other task is failed with
// `capability_unavailable` (apps/worker-go/internal/runner explains why, not handed back).
var Runners = map[string]Runner{
	"classify": Classify,
	"embed":    Embed,
}

// Names is the implemented task names, sorted, for messages and logs.
func Names() []string {
	names := make([]string, 0, len(Runners))
	for n := range Runners {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// InvalidParams: the stored params are not what the task takes. Intake checks them at
// submit, so this means a record written by something else.
var InvalidParams = errors.New("invalid params")

func result(output any, model string, usage contract.Usage) (*contract.JobResult, error) {
	encoded, err := json.Marshal(output)
	if err != nil {
		return nil, err
	}
	return &contract.JobResult{Output: contract.Object(encoded), Model: model, Usage: usage}, nil
}

// Embed is the text's embedding.
func Embed(ctx context.Context, text string, _ *contract.JobRecord, m *models.Job) (*contract.JobResult, error) {
	call, err := m.Embed(ctx, []string{text})
	if err != nil {
		return nil, err
	}
	vector := call.Vectors[0]
	return result(map[string]any{"embedding": vector, "dimensions": len(vector)}, call.Model, call.Usage)
}

// ClassifyParams are classify's params (src/jobrelay/tasks.py ClassifyParams).
type ClassifyParams struct {
	Labels       []string            `json:"labels"`
	Descriptions map[string]string   `json:"descriptions"`
	Examples     map[string][]string `json:"examples"`
	Template     *string             `json:"template"`
	MultiLabel   bool                `json:"multi_label"`
	Threshold    *float64            `json:"threshold"`
}

func parseClassify(raw contract.Object) (*ClassifyParams, error) {
	var p ClassifyParams
	if err := json.Unmarshal(raw, &p); err != nil {
		return nil, fmt.Errorf("%w: %v", InvalidParams, err)
	}
	// Intake stores the labels as sent and checks them stripped; the Python worker reads
	// them stripped too, so the output names the same labels.
	for i, l := range p.Labels {
		p.Labels[i] = strings.TrimSpace(l)
	}
	if len(p.Labels) < 2 {
		return nil, fmt.Errorf("%w: classify needs at least two labels", InvalidParams)
	}
	return &p, nil
}

// Classify is zero-shot (or few-shot) classification by embeddings: the text against one
// prototype per label.
func Classify(ctx context.Context, text string, r *contract.JobRecord, m *models.Job) (*contract.JobResult, error) {
	p, err := parseClassify(r.Params)
	if err != nil {
		return nil, err
	}
	templates := DefaultTemplates
	if p.Template != nil {
		templates = []string{*p.Template}
	}
	var prototypes []string
	counts := make([]int, len(p.Labels))
	for i, label := range p.Labels {
		group := PrototypeTexts(label, p.Descriptions[label], p.Examples[label], templates)
		prototypes = append(prototypes, group...)
		counts[i] = len(group)
	}
	embedded, err := m.Embed(ctx, []string{text})
	if err != nil {
		return nil, err
	}
	// Prototype texts repeat across jobs far more than inputs do: EmbedLabels caches them.
	labels, err := m.EmbedLabels(ctx, prototypes)
	if err != nil {
		return nil, err
	}
	similarity := Similarities(Prototypes(labels.Vectors, counts), embedded.Vectors[0])
	usage := contract.Usage{
		PromptTokens: embedded.Usage.PromptTokens + labels.Usage.PromptTokens,
		TotalTokens:  embedded.Usage.TotalTokens + labels.Usage.TotalTokens,
	}
	if p.MultiLabel {
		threshold := MultiLabelThreshold
		if p.Threshold != nil {
			threshold = *p.Threshold
		}
		return result(multi(p.Labels, similarity, threshold), embedded.Model, usage)
	}
	return result(single(p.Labels, similarity), embedded.Model, usage)
}
