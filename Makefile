PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# Links in emails point at the local site unless SITE_URL says otherwise.
SITE_URL ?= http://localhost:$(PORT)
export PORT SITE_URL

.PHONY: run test install lint format migrate clean bench

# Create the virtual environment and install what the requirement files pin
# (again only when one of them changes).
$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

# The translations Django reads (locale/<language>/LC_MESSAGES/django.mo), compiled from the
# committed .po files in pure Python: no GNU gettext needed (README: Languages).
install: $(BIN)/.installed
	$(BIN)/python manage.py compile_translations --verbosity 0

# Web, Celery worker and Celery beat together; one Ctrl-C stops all three.
# On PostgreSQL, migrate runs as the owner role of MIGRATION_DATABASE_URL and everything else
# as the runtime role of DATABASE_URL, which owns no table (README: Security).
run: install
	@case "$${DATABASE_URL:-}" in postgres*) if [ -z "$${MIGRATION_DATABASE_URL:-}" ]; then \
	  echo "DATABASE_URL is PostgreSQL: set MIGRATION_DATABASE_URL to the owner role too (README: Security)."; \
	  exit 1; fi;; esac
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py load_demo_data
	$(BIN)/python manage.py ensure_superuser
	@echo "Serving on http://localhost:$(PORT)/admin/ (web, worker and beat; Ctrl-C stops all three)"
	$(BIN)/honcho start -f Procfile

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Benchmarks and full-size fault scenarios against PostgreSQL and Redis on this machine
# (docs/benchmarks.md); they install postfix (smtp-sink) and wrk with apt-get when run as root.
bench: install
	$(BIN)/python -m bench.run_all

migrate: install
	$(BIN)/python manage.py migrate

clean:
	rm -rf $(VENV) var staticfiles
