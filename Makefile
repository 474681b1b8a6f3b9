# Two commands do all set-up on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup run test test-fast index bench bench-http eval clean browser

setup: $(STAMP)

# torch first, alone: the pinned CPU build lies on this machine's disk, and a
# plain `torch` requirement would pull a multi-GB CUDA build.  Then the exact
# lock in one go (no resolver backtracking), then our package without deps.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --no-deps -e .
	$(BIN)/rag models prepare
	touch $(STAMP)

index: setup
	$(BIN)/rag index build

run: setup
	$(BIN)/rag index build --if-needed
	$(BIN)/rag serve

# The chat page's end-to-end test drives Debian's chromium (never a downloaded
# browser); CJK fonts so the page's Chinese renders in its screenshots.
browser:
	command -v chromium >/dev/null && fc-list :lang=zh | grep -q . || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver fonts-noto-cjk)

test: setup browser
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

bench: setup
	$(BIN)/rag bench

bench-http: setup
	$(BIN)/rag index build --if-needed
	$(BIN)/rag bench --http

eval: setup
	$(BIN)/rag eval

clean:
	rm -rf $(VENV) index/current index/v-* index/CURRENT
