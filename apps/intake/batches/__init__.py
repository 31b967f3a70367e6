"""The OpenAI-compatible Files and Batch API on intake (docs/api.md, OpenAI Batch)."""
