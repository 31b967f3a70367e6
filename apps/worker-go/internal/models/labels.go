package models

import (
	"context"
	"sync"

	"jobrelay/worker-go/internal/contract"
)

// Label embeddings are kept per (tenant, model, label): labels repeat across jobs far more
// than texts do. Per tenant, because a shared cache would answer one tenant's label for
// free (usage 0) because another tenant had used it, and so tell it what others classify.
const labelCacheSize = 20_000

type labelKey struct{ tenant, model, label string }

type labelCache struct {
	mu      sync.Mutex
	limit   int
	vectors map[labelKey][]float32
}

func newLabelCache(limit int) *labelCache {
	return &labelCache{limit: limit, vectors: map[labelKey][]float32{}}
}

func (c *labelCache) get(k labelKey) ([]float32, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.vectors[k]
	return v, ok
}

func (c *labelCache) put(tenant, model string, labels []string, vectors [][]float32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.vectors)+len(labels) > c.limit {
		clear(c.vectors) // simpler than LRU, and labels come back at one call's cost
	}
	for i, l := range labels {
		c.vectors[labelKey{tenant, model, l}] = vectors[i]
	}
}

// EmbedLabels is the vectors of labels, calling the model only for those it has not
// embedded yet for the job's tenant, on the model the job's first embedding pinned.
func (j *Job) EmbedLabels(ctx context.Context, labels []string) (*Embedding, error) {
	cache := j.gateway.labels
	if j.embedder == nil {
		first, err := j.Embed(ctx, labels[:1]) // pins the model the rest must come from
		if err != nil {
			return nil, err
		}
		cache.put(j.tenant, first.Model, labels[:1], first.Vectors)
	}
	model := j.embedder.Model
	var missing []string
	seen := map[string]bool{}
	for _, l := range labels {
		if _, ok := cache.get(labelKey{j.tenant, model, l}); !ok && !seen[l] {
			missing = append(missing, l)
			seen[l] = true
		}
	}
	out := &Embedding{Model: model}
	fresh := map[string][]float32{}
	if len(missing) > 0 {
		call, err := j.Embed(ctx, missing)
		if err != nil {
			return nil, err
		}
		cache.put(j.tenant, model, missing, call.Vectors)
		for i, l := range missing {
			fresh[l] = call.Vectors[i]
		}
		out.Usage = call.Usage
	} else {
		out.Usage = contract.Usage{}
	}
	for _, l := range labels {
		v, ok := fresh[l]
		if !ok {
			v, _ = cache.get(labelKey{j.tenant, model, l})
		}
		out.Vectors = append(out.Vectors, v)
	}
	return out, nil
}
