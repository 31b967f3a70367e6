package tasks

import (
	"bytes"
	"encoding/json"
	"math"
	"sort"
	"strings"
)

// The zero-shot recipe of apps/worker/tasks/zero_shot.py, with its constants: each label
// becomes one prototype vector, the mean of the embeddings of the label written into each
// template, its description and its examples; the text's similarity to each ranks them.
var (
	// DefaultTemplates: with the local e5+bge embedder (classify's default profile), these
	// two wordings averaged ranked first on the dev split of bench/data/labelled
	// (docs/local-model.md). Kept equal to the Python worker's DEFAULT_TEMPLATES by
	// TestTheRecipeConstantsAreThePythonWorkers.
	DefaultTemplates = []string{"This message is about {label}.", "It is {label}."}
)

const (
	// SoftmaxTemperature: cosine similarities of sentence embeddings sit in a narrow band,
	// so a softmax over them needs a low temperature to say which label wins.
	SoftmaxTemperature = 0.05
	// MultiLabelThreshold: standard deviations above the mean a label must stand to be
	// chosen, calibrated on bench/data/classify/tags.json.
	MultiLabelThreshold = 0.75
)

// PrototypeTexts is the texts whose embeddings, averaged, stand for a label. A plain
// replace, not a format: the template may come from the job.
func PrototypeTexts(label, description string, examples, templates []string) []string {
	texts := make([]string, 0, len(templates)+1+len(examples))
	for _, t := range templates {
		texts = append(texts, strings.ReplaceAll(t, "{label}", label))
	}
	if description != "" {
		texts = append(texts, description)
	}
	return append(texts, examples...)
}

// Prototypes is one unit vector per label, the normalised mean of counts[i] vectors each.
func Prototypes(vectors [][]float32, counts []int) [][]float64 {
	out := make([][]float64, len(counts))
	start := 0
	for i, n := range counts {
		centroid := make([]float64, len(vectors[start]))
		for _, v := range vectors[start : start+n] {
			for d, x := range v {
				centroid[d] += float64(x)
			}
		}
		var norm float64
		for d := range centroid {
			centroid[d] /= float64(n)
			norm += centroid[d] * centroid[d]
		}
		norm = max(math.Sqrt(norm), 1e-12)
		for d := range centroid {
			centroid[d] /= norm
		}
		out[i] = centroid
		start += n
	}
	return out
}

// Similarities is each prototype's dot product with the (unit) text vector.
func Similarities(prototypes [][]float64, text []float32) []float64 {
	out := make([]float64, len(prototypes))
	for i, p := range prototypes {
		for d, x := range text {
			out[i] += p[d] * float64(x)
		}
	}
	return out
}

// SoftmaxScores ranks labels; they are not calibrated probabilities.
func SoftmaxScores(similarity []float64) []float64 {
	top := math.Inf(-1)
	for _, s := range similarity {
		top = max(top, s)
	}
	weights := make([]float64, len(similarity))
	var sum float64
	for i, s := range similarity {
		weights[i] = math.Exp((s - top) / SoftmaxTemperature)
		sum += weights[i]
	}
	for i := range weights {
		weights[i] /= sum
	}
	return weights
}

// Standardised is how far each similarity stands above the others', in (population)
// standard deviations, as numpy's std.
func Standardised(similarity []float64) []float64 {
	var mean float64
	for _, s := range similarity {
		mean += s
	}
	mean /= float64(len(similarity))
	var variance float64
	for _, s := range similarity {
		variance += (s - mean) * (s - mean)
	}
	spread := max(math.Sqrt(variance/float64(len(similarity))), 1e-6)
	z := make([]float64, len(similarity))
	for i, s := range similarity {
		z[i] = (s - mean) / spread
	}
	return z
}

// ranked is label indices by similarity, best first (stable, as numpy's argsort of the
// negated values is for ties in practice).
func ranked(similarity []float64) []int {
	order := make([]int, len(similarity))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return similarity[order[a]] > similarity[order[b]] })
	return order
}

func round(x float64, places int) float64 {
	scale := math.Pow(10, float64(places))
	return math.Round(x*scale) / scale
}

// scores is a label -> score object in rank order, as the Python worker writes it (a Go
// map would come out sorted by label).
type scores struct {
	labels []string
	values []float64
}

func (s scores) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, l := range s.labels {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(l)
		v, _ := json.Marshal(s.values[i])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

type singleOutput struct {
	Label  string `json:"label"`
	Scores scores `json:"scores"`
}

func single(labels []string, similarity []float64) singleOutput {
	probs := SoftmaxScores(similarity)
	out := singleOutput{}
	for _, i := range ranked(similarity) {
		out.Scores.labels = append(out.Scores.labels, labels[i])
		out.Scores.values = append(out.Scores.values, round(probs[i], 4))
	}
	out.Label = out.Scores.labels[0]
	return out
}

type multiOutput struct {
	Label     string   `json:"label"`
	Labels    []string `json:"labels"`
	Scores    scores   `json:"scores"`
	Threshold float64  `json:"threshold"`
}

func multi(labels []string, similarity []float64, threshold float64) multiOutput {
	z := Standardised(similarity)
	order := ranked(similarity)
	out := multiOutput{Label: labels[order[0]], Threshold: threshold}
	for rank, i := range order {
		if rank == 0 || z[i] >= threshold { // the best label is always chosen
			out.Labels = append(out.Labels, labels[i])
		}
		out.Scores.labels = append(out.Scores.labels, labels[i])
		out.Scores.values = append(out.Scores.values, round(z[i], 3))
	}
	return out
}
