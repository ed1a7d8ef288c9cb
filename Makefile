# Everything a fresh clone needs: `make run` starts the server, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The pinned Claude Code CLI version lives in one place: .claude-cli-version.
CLAUDE_CLI_VERSION := $(shell cat .claude-cli-version)
CLAUDE_DIR := .tools/claude-$(CLAUDE_CLI_VERSION)
CLAUDE_BIN := $(CURDIR)/$(CLAUDE_DIR)/node_modules/.bin/claude
PYTEST_ARGS ?=

.PHONY: venv run login doctor example test unit contract lint fmt docs bench bench-profile bench-overhead cli clients browser nginx clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Client libraries the contract tests drive that '.[dev]' cannot hold. instructor pins
# jiter<0.15 and rich<15, below what openai and others here need, so no version of it
# resolves beside them: it goes in without its pins, with the two packages it imports
# that nothing else brings. The Node openai SDK and the Codex CLI (an npm package that
# brings its own native binary) go in project-local, pinned.
INSTRUCTOR := instructor==1.17.0 docstring-parser==0.18.0 jinja2==3.1.6
INSTRUCTOR_STAMP := $(VENV)/.instructor
NODE_OPENAI_VERSION := $(shell cat .node-openai-version)
NODE_OPENAI_DIR := .tools/node-openai-$(NODE_OPENAI_VERSION)
NODE_OPENAI := $(NODE_OPENAI_DIR)/node_modules/openai/package.json

CODEX_VERSION := $(shell cat .codex-version)
CODEX_DIR := .tools/codex-$(CODEX_VERSION)
CODEX_BIN := $(CODEX_DIR)/node_modules/.bin/codex

clients: $(INSTRUCTOR_STAMP) $(NODE_OPENAI) $(CODEX_BIN)

$(INSTRUCTOR_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps $(INSTRUCTOR)
	touch $(INSTRUCTOR_STAMP)

$(NODE_OPENAI):
	@command -v npm >/dev/null || { echo "npm is required to install the Node openai SDK (apt-get install npm)" >&2; exit 1; }
	mkdir -p $(NODE_OPENAI_DIR)
	npm install --prefix $(NODE_OPENAI_DIR) --no-audit --no-fund --loglevel=error --save-exact openai@$(NODE_OPENAI_VERSION)

$(CODEX_BIN):
	@command -v npm >/dev/null || { echo "npm is required to install the pinned Codex CLI (apt-get install npm)" >&2; exit 1; }
	mkdir -p $(CODEX_DIR)
	npm install --prefix $(CODEX_DIR) --no-audit --no-fund --loglevel=error --save-exact @openai/codex@$(CODEX_VERSION)
	$(CODEX_BIN) --version

# Debian's chromium, for the status page's browser test (tests/contract/http/
# test_dashboard_browser.py drives it headless with its own flags: no driver, no
# download). Installed only when missing, which needs root; the test fails loudly
# without it (or point CLAUDE_PROXY_TEST_CHROMIUM at another chromium).
CHROMIUM := /usr/bin/chromium

browser:
	@if [ -n "$$CLAUDE_PROXY_TEST_CHROMIUM" ] || [ -x $(CHROMIUM) ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "chromium is missing at $(CHROMIUM); the browser test needs it. Install it as root:" >&2; \
		echo "  sudo apt-get update && sudo apt-get install -y chromium" >&2; \
		echo "or set CLAUDE_PROXY_TEST_CHROMIUM to a chromium executable." >&2; \
		exit 1; \
	fi; \
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium

# Debian's nginx, for the scale-out test (tests/contract/http/test_scale_out.py runs
# deploy/nginx.conf in front of two servers, as its own unprivileged-style nginx on
# 127.0.0.1). Installed only when missing, which needs root; the test fails loudly
# without it (or point CLAUDE_PROXY_TEST_NGINX at another nginx). Where no policy-rc.d
# stops it, the package also starts the system's nginx on port 80; the test needs none.
NGINX := /usr/sbin/nginx

nginx:
	@if [ -n "$$CLAUDE_PROXY_TEST_NGINX" ] || [ -x $(NGINX) ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
		echo "nginx is missing at $(NGINX); the scale-out test needs it. Install it as root:" >&2; \
		echo "  sudo apt-get update && sudo apt-get install -y nginx" >&2; \
		echo "or set CLAUDE_PROXY_TEST_NGINX to an nginx executable." >&2; \
		exit 1; \
	fi; \
	apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx

# The real CLI, project-local and git-ignored, for the contract tests and the benchmark.
cli: $(CLAUDE_BIN)

$(CLAUDE_BIN):
	@command -v npm >/dev/null || { echo "npm is required to install the pinned claude CLI (apt-get install npm)" >&2; exit 1; }
	mkdir -p $(CLAUDE_DIR)
	npm install --prefix $(CLAUDE_DIR) --no-audit --no-fund --loglevel=error @anthropic-ai/claude-code@$(CLAUDE_CLI_VERSION)
	$(CLAUDE_BIN) --version

# The server finds its CLI itself: $$CLAUDE_CLI_PATH, else `claude` on PATH, else the
# pinned one `make cli` installs here.
run: venv cli
	$(BIN)/claude-max-api serve $(ARGS)

# Signs the CLI in with a browser: $$CLAUDE_CLI_PATH when set, else the pinned CLI
# (the credentials land in ~/.claude, which every `claude` of this user reads).
login: cli
	"$${CLAUDE_CLI_PATH:-$(CLAUDE_BIN)}" auth login

# Checks the setup (CLI, login, port, directories) without spending a request.
doctor: venv cli
	$(BIN)/claude-max-api doctor $(ARGS)

# The library without HTTP: a two-turn conversation through the core (examples/embed.py).
example: venv cli
	$(BIN)/python examples/embed.py

# The unit tests are pure CPU and share nothing, so they run on every core (pytest-xdist);
# the contract tests run one at a time, since each drives real CLI processes and some
# count what is left of them.
UNIT_WORKERS ?= $(shell nproc 2>/dev/null || echo 2)

test: unit contract

unit: venv
	$(BIN)/pytest -q -p no:cacheprovider -n $(UNIT_WORKERS) tests/unit $(PYTEST_ARGS)

contract: venv cli clients browser nginx
	CLAUDE_PROXY_TEST_CLI=$(CLAUDE_BIN) $(BIN)/pytest -q -p no:cacheprovider tests/contract $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: venv
	$(BIN)/ruff check --fix src tests examples bench
	$(BIN)/ruff format src tests examples bench

# docs/configuration.md is generated from the settings' declaration (a test checks it).
docs: venv
	$(BIN)/python -m claude_max_api.docgen > docs/configuration.md

bench: venv cli
	CLAUDE_PROXY_TEST_CLI=$(CLAUDE_BIN) $(BIN)/python -m bench.run

# Where the live server's CPU goes: the quick scenarios, repeated for enough samples,
# against the live server of the instant profile run under py-spy; writes
# docs/flamegraph-live.svg (and leaves docs/benchmarks.md as it is).
bench-profile: venv cli
	CLAUDE_PROXY_TEST_CLI=$(CLAUDE_BIN) $(BIN)/python -m bench.run --quick --repeats 8 \
		--configs live --profiles instant --profile docs

# What each turn sends upstream beyond the client's own text (its own section of
# docs/benchmarks.md, which `make bench` keeps).
bench-overhead: venv cli
	CLAUDE_PROXY_TEST_CLI=$(CLAUDE_BIN) $(BIN)/python -m bench.overhead

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache .hypothesis
