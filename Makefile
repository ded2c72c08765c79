# The two commands a newcomer needs: `make run` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install run test lint typecheck unit schemas contract bench

# The npm FHIR clients and test servers (an OpenID provider among them) the tests run under
# Node 20 (tests/js), pinned by its lockfile; Debian's Chromium for the browser tests
# (Playwright cannot download its own here); Pango, fonts and poppler for the handout's PDF.
APT_INSTALL := DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends
# WeasyPrint makes the patient's handout PDF with Pango; the tests read it back with poppler.
HANDOUT_PACKAGES := libpango-1.0-0 libpangoft2-1.0-0 fonts-dejavu-core poppler-utils
$(STAMP): pyproject.toml tests/js/package-lock.json
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	npm ci --prefix tests/js --no-audit --no-fund --silent
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser tests"; \
		$(APT_INSTALL) chromium >/dev/null || { apt-get update -qq && $(APT_INSTALL) chromium >/dev/null; }; }
	@{ command -v pdftoppm && ldconfig -p | grep -q libpangoft2-1.0 && fc-list | grep -q DejaVuSans; } >/dev/null 2>&1 || { \
		echo "installing Pango and fonts (the handout's PDF) and poppler-utils (its tests)"; \
		$(APT_INSTALL) $(HANDOUT_PACKAGES) >/dev/null || { apt-get update -qq && $(APT_INSTALL) $(HANDOUT_PACKAGES) >/dev/null; }; }
	touch $(STAMP)

install: $(STAMP)

DEMO_SCOPES := --scope screenings:write --scope screenings:read --scope referrals:read \
	--scope referrals:write --scope directory:write --scope audit:read --scope metrics:read

# BELONG_DATABASE_URL unset: the embedded PostgreSQL under ./var/pg, started by the first
# command that needs it and left running for the next.
run: install
	$(BIN)/belong db upgrade
	$(BIN)/belong clinics create --name "Demo Clinic" --language en --if-missing
	$(BIN)/belong directory import --clinic "Demo Clinic" deploy/seed/directory.hsds.json
	@echo "Demo clinic token (use it as: Authorization: Bearer <token>):"
	@$(BIN)/belong clients create --clinic "Demo Clinic" --name "make run" $(DEMO_SCOPES) | tail -n 1
	@$(BIN)/belong users add --clinic "Demo Clinic" --name "Demo Clinician" --role coordinator --if-missing >/dev/null
	@echo "Open the clinician app (this link signs you in once, within 10 minutes):"
	@$(BIN)/belong users link --clinic "Demo Clinic" --user "Demo Clinician" | tail -n 1
	$(BIN)/belong serve --host 127.0.0.1 --port 8000 --workers 1

lint: install
	$(BIN)/ruff check service tests migrations
	$(BIN)/ruff format --check service tests migrations
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy service/*/model.py service/instruments/scoring.py service/matching/needs.py service/directory/hsds.py service/platform/lookup.py

unit: install
	$(BIN)/pytest

# On the PostgreSQL of BELONG_TEST_DATABASE_URL when set, else on an embedded one under
# ./var/pgtest that the run starts and stops; its last line names which. On TEST_WORKERS
# pytest-xdist workers (0: one process), each on a database of its own beside that one.
# Plain `--dist load`: `loadgroup` schedules by test id and would run schemathesis's
# operations (one id for all) once.
TEST_WORKERS ?= auto
test: lint typecheck
	$(BIN)/pytest -n $(TEST_WORKERS)

# Regenerate the checked-in artefacts that tests compare against.
schemas: install
	$(BIN)/belong instruments schema
	$(BIN)/belong openapi export

# A longer schemathesis CLI run against a live server (not part of `make test`).
contract: install
	$(BIN)/python tests/contract/contract_cli.py

# The scoring and matching micro-benchmarks, then the load benchmark against the bare
# Litestar + asyncpg ceiling and the lean limit of a screening, then every clinician app
# page's latency on a seeded clinic (not part of `make test`).
# The load benchmark drives the servers with wrk: installed with apt-get when missing.
bench: install
	@command -v wrk >/dev/null 2>&1 || { \
		echo "wrk is missing: $(APT_INSTALL) wrk"; \
		$(APT_INSTALL) wrk || { apt-get update && $(APT_INSTALL) wrk; }; }
	$(BIN)/python tests/perf/bench_scoring.py
	$(BIN)/python tests/perf/bench_matching.py
	$(BIN)/python tests/perf/bench_load.py
	$(BIN)/python tests/perf/bench_app.py
