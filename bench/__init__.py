"""Benchmarks and evaluations: `make bench` (python -m bench, issue 10) and
`make eval-local-model` (bench.classify_eval)."""
