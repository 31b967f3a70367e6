// Package logs writes the Go worker's logs as the Python services do (src/jobrelay/logs.py):
// one JSON object a line on stderr, with `time`, `level`, `logger` and `message`, every
// line about a job carrying `job_id`, and one line per job transition from the logger
// `jobrelay.jobs`, which the chaos suite reads to count what every worker wrote.
package logs

import (
	"io"
	"log/slog"
	"math"
	"strings"

	"jobrelay/worker-go/internal/contract"
)

// Setup makes slog write JSON lines at level (DEBUG, INFO, WARNING, ERROR) to w.
func Setup(w io.Writer, level string) {
	var lvl slog.Level
	switch strings.ToUpper(level) {
	case "DEBUG":
		lvl = slog.LevelDebug
	case "WARNING", "WARN":
		lvl = slog.LevelWarn
	case "ERROR":
		lvl = slog.LevelError
	default:
		lvl = slog.LevelInfo
	}
	handler := slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: lvl,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.MessageKey:
				a.Key = "message"
			case slog.LevelKey:
				// Python's names, so one jq filter reads every app's lines.
				if l, ok := a.Value.Any().(slog.Level); ok && l == slog.LevelWarn {
					a.Value = slog.StringValue("WARNING")
				}
			}
			return a
		},
	})
	base = slog.New(handler)
	slog.SetDefault(base.With("logger", "jobrelay.worker"))
}

// base is the logger without a `logger` field, so each named one carries a single one.
var base = slog.Default()

// Transitions is the logger of the one line per job transition.
func transitions() *slog.Logger {
	return base.With("logger", "jobrelay.jobs")
}

// Transition writes the one line of a job's change of status.
func Transition(r *contract.JobRecord) {
	attrs := []any{
		"job_id", r.ID, "task", r.Task, "status", string(r.Status), "seq", r.Seq, "attempt", r.Attempts,
	}
	if r.QueueSeconds != nil {
		attrs = append(attrs, "queue_seconds", math.Round(*r.QueueSeconds*1e6)/1e6)
	}
	if r.ModelSeconds != nil {
		attrs = append(attrs, "model_seconds", math.Round(*r.ModelSeconds*1e6)/1e6)
	}
	if r.Error != nil {
		attrs = append(attrs, "error_code", r.Error.Code)
	}
	if r.Worker != nil {
		attrs = append(attrs, "worker", *r.Worker)
	}
	transitions().Info("job "+string(r.Status), attrs...)
}
