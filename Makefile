# Targets a newcomer can read. The venv lives in .venv.
PY := .venv/bin

.PHONY: install run test test-pg lint bench nodes
install:            ## create the venv and install referflow with test tools
	python3 -m venv .venv && $(PY)/pip install -q -e '.[test]'
run: install        ## run on the embedded default (SQLite, in-process jobs)
	$(PY)/referflow serve
test: install       ## the test suite on SQLite
	$(PY)/pytest
test-pg: install    ## the test suite on the local PostgreSQL + Redis
	TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test REDIS_URL=redis://127.0.0.1:6379/0 $(PY)/pytest
lint: install
	$(PY)/ruff check service tests bench
bench: install      ## load benchmark (prints figures)
	$(PY)/python bench/load.py
nodes: install      ## regenerate, build and lint the n8n node and the Zapier app from node_specs/
	$(PY)/referflow nodes generate
	cd integrations/n8n-nodes-referflow && npm ci && npm run build && npm run lint
	cd integrations/zapier && npm ci
