"""Test doubles of the benchmarks, named as such: never a real model."""
