# The two things a new user does: run the main job, and run the tests. Both set up first.
.PHONY: setup run test lint

setup:
	@bash scripts/setup.sh

run: setup
	.venv/bin/harness run

lint:
	.venv/bin/ruff check --output-format concise harness tests bench scenarios
	.venv/bin/ruff format --check harness tests bench scenarios
	.venv/bin/mypy harness

test: setup lint
	.venv/bin/pytest tests scenarios -m "quick or not chaos" --durations=20
