# The README's two commands: `make demo` (the main job) and `make test`.
# Both set up everything they need on a fresh Debian 12 machine.
.PHONY: demo test lint bench docs-images clean report-image architecture

VENV := .venv/bin
# make test's pytest-xdist workers: the suite mostly waits (servers, containers,
# Locust), so more workers than cores overlap the waiting. TEST_WORKERS=0: serial.
TEST_WORKERS ?= 4

demo:
	@scripts/bootstrap.sh
	$(VENV)/connstorm repro

test:
	@scripts/bootstrap.sh --with-test-tools
	@scripts/docker-engine.sh
	$(VENV)/ruff check .
	$(VENV)/mypy
	TESTCONTAINERS_RYUK_DISABLED=true $(VENV)/pytest -n $(TEST_WORKERS) --maxschedchunk 1

lint:
	$(VENV)/ruff check .
	$(VENV)/mypy

# docs/report.png, the README's picture: a real connstorm repro --quick, then headless
# Chromium's screenshot of its report.html (scripts/report_image.py).
report-image:
	@scripts/bootstrap.sh
	$(VENV)/python scripts/report_image.py

# docs/architecture.md, drawn from the layers tests/connstorm/test_layering.py checks.
architecture:
	$(VENV)/python -m connstorm.cli.architecture --write

bench:
	@scripts/bootstrap.sh --with-test-tools
	$(VENV)/python -m benchmarks

# The docs' screenshots, from real runs (scripts/docs_images.py).
docs-images:
	@scripts/bootstrap.sh --with-test-tools
	$(VENV)/python scripts/docs_images.py

clean:
	rm -rf runs test-output .pytest_cache .mypy_cache .ruff_cache
