# Two targets do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The CPU build of torch is pinned here (an unpinned torch pulls GBs of CUDA packages);
# the package itself accepts a range.
TORCH_PIN := torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint docs docs-build format install install-dev clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_PIN)
	$(BIN)/pip install -q -e .
	touch $@

$(BIN)/.installed-dev: $(BIN)/.installed
	$(BIN)/pip install -q $(TORCH_PIN) -e ".[dev]"
	touch $@

install: $(BIN)/.installed
install-dev: $(BIN)/.installed-dev

demo: $(BIN)/.installed
	$(BIN)/omnifuse demo

lint: $(BIN)/.installed-dev
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: $(BIN)/.installed-dev
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

# The page test drives the system chromium + chromedriver through Selenium (Debian packages).
$(BIN)/.browser: | $(BIN)/.installed-dev
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -q && apt-get install -y -q chromium chromium-driver)
	touch $@

# The documentation site (MkDocs + mkdocstrings); --strict turns a broken link or reference into an error.
docs-build: $(BIN)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

docs: $(BIN)/.installed-dev
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

test: $(BIN)/.installed-dev $(BIN)/.browser lint docs-build
	$(BIN)/python -m pytest -q -x --timeout=900 tests

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
