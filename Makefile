# Two commands on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# one pytest-xdist worker per core, at most 4 (docs/contributing.md); PYTEST_ARGS= runs serially
PYTEST_ARGS ?= -n auto --maxprocesses 4 --dist loadgroup

.PHONY: venv demo study test lint bench docs clean

$(STAMP): pyproject.toml scripts/setup_venv.sh
	bash scripts/setup_venv.sh $(VENV)
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(PY) -m recognizer.studies.demo

# The imbalance study on a synthetic stand-in target (budget: 30 min on 2 CPU cores; last
# measured at 11 min, see docs/study.md): rewrites
# docs/study.md and docs/img/study/.
study: $(STAMP)
	$(PY) -m recognizer.studies.imbalance --out study_out --docs docs/study.md

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

bench: $(STAMP)
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf site demo_out study_out .pytest_cache .ruff_cache
