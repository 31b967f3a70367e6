// Package models is the Go worker's side of the model layer: the same profiles file as the
// Python worker (config/models.yaml), the same retry rules (apps/worker/retry.py) and the
// same OpenAI-compatible embeddings endpoint.
package models

import (
	"fmt"
	"os"
	"regexp"
	"slices"

	"gopkg.in/yaml.v3"
)

// Capability is what a profile can do. The Go worker runs embedding tasks only.
const Embeddings = "embeddings"

// Profile is one model at one endpoint, with the limits its owner must keep to.
type Profile struct {
	Name              string   `yaml:"-"`
	Kind              string   `yaml:"kind"`
	BaseURL           string   `yaml:"base_url"`
	Model             string   `yaml:"model"`
	APIKeyEnv         string   `yaml:"api_key_env"`
	AzureDeployment   string   `yaml:"azure_deployment"`
	APIVersion        string   `yaml:"api_version"`
	Capabilities      []string `yaml:"capabilities"`
	MaxConcurrency    int      `yaml:"max_concurrency"`
	RequestsPerMinute int      `yaml:"requests_per_minute"`
	TokensPerMinute   int      `yaml:"tokens_per_minute"`
	TimeoutSeconds    float64  `yaml:"timeout_seconds"`
	MaxAttempts       int      `yaml:"max_attempts"`
}

// Catalog is every profile and each task's ordered fallback list.
type Catalog struct {
	Profiles map[string]*Profile `yaml:"profiles"`
	Tasks    map[string][]string `yaml:"tasks"`
}

// Chain is the profiles to try for task, in order, that have capability.
func (c *Catalog) Chain(task, capability string) []*Profile {
	var out []*Profile
	for _, name := range c.Tasks[task] {
		if p := c.Profiles[name]; p != nil && slices.Contains(p.Capabilities, capability) {
			out = append(out, p)
		}
	}
	return out
}

var variable = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}`)

// expand replaces ${NAME} and ${NAME:-default} in the file's values (yaml.Node scalars,
// never its comments), as apps/worker/profiles.py does.
func expand(node *yaml.Node) error {
	if node.Kind == yaml.ScalarNode {
		var missing error
		node.Value = variable.ReplaceAllStringFunc(node.Value, func(m string) string {
			parts := variable.FindStringSubmatch(m)
			if v := os.Getenv(parts[1]); v != "" {
				return v
			}
			if len(parts[0]) > len(parts[1])+3 { // has a :- default
				return parts[2]
			}
			missing = fmt.Errorf("models file: ${%s} is not set and has no default", parts[1])
			return m
		})
		return missing
	}
	for _, child := range node.Content {
		if err := expand(child); err != nil {
			return err
		}
	}
	return nil
}

// LoadCatalog reads and checks the models file, so a typo fails the worker's start, not a
// job an hour later.
func LoadCatalog(path string) (*Catalog, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("models file %s: %w", path, err)
	}
	if err := expand(&doc); err != nil {
		return nil, err
	}
	var c Catalog
	if err := doc.Decode(&c); err != nil {
		return nil, fmt.Errorf("models file %s: %w", path, err)
	}
	for name, p := range c.Profiles {
		if p == nil {
			return nil, fmt.Errorf("models file: profile %s is empty", name)
		}
		p.Name = name
		if p.BaseURL == "" || p.Model == "" || len(p.Capabilities) == 0 {
			return nil, fmt.Errorf("models file: profile %s needs base_url, model and capabilities", name)
		}
		if p.Kind == "" {
			p.Kind = "openai"
		}
		if p.TimeoutSeconds <= 0 {
			p.TimeoutSeconds = 60
		}
		if p.MaxAttempts <= 0 {
			p.MaxAttempts = 3
		}
	}
	for task, names := range c.Tasks {
		for _, n := range names {
			if c.Profiles[n] == nil {
				return nil, fmt.Errorf("models file: task %s names unknown profile %s", task, n)
			}
		}
	}
	return &c, nil
}

// APIKey is the profile's key, from the environment variable it names.
func (p *Profile) APIKey() (string, error) {
	if p.APIKeyEnv == "" {
		return "none", nil // local and keyless endpoints ignore it
	}
	v := os.Getenv(p.APIKeyEnv)
	if v == "" {
		return "", fmt.Errorf("profile %s: environment variable %s is empty", p.Name, p.APIKeyEnv)
	}
	return v, nil
}
