# Targets a newcomer can read. The venv lives in .venv.
PY := .venv/bin

.PHONY: install run test test-fast test-pg lint bench fuzz nodes
install:            ## create the venv and install referflow with test tools
	python3 -m venv .venv && $(PY)/pip install -q -e '.[test]'
run: install        ## run on the embedded default (SQLite, in-process jobs)
	$(PY)/referflow serve
test: install       ## the test suite on SQLite
	$(PY)/pytest
test-fast: install  ## the quick loop: everything but the slow tests (servers, n8n, races, fuzz)
	$(PY)/pytest -m "not slow" -q
test-pg: install    ## the test suite on the local PostgreSQL + Redis
	TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 $(PY)/pytest
lint: install       ## ruff, mypy (strict on domain/ and actions/), the import-layer contracts
	$(PY)/ruff check service tests bench
	$(PY)/mypy
	$(PY)/lint-imports
bench: install      ## load benchmark (prints figures)
	$(PY)/python bench/load.py
fuzz: install       ## schemathesis at scale against live servers on both databases (prints figures)
	$(PY)/python bench/fuzz.py --db both --examples 300
nodes: install      ## regenerate, build and lint the n8n node and the Zapier app from node_specs/
	$(PY)/referflow nodes generate
	cd integrations/n8n-nodes-referflow && npm ci && npm run build && npm run lint
	cd integrations/zapier && npm ci
