"""Tooling for k8s/: Dapr resources generated from components/, and offline validation."""
