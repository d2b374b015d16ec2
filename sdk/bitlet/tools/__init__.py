"""User tools: CLI, benchmarks, demo helpers, accuracy, input loading."""
