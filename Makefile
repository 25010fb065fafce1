# OneGrid: `make run` starts it on the embedded defaults, `make test` checks the layers and runs the whole suite.
# Both create/reuse the virtual environment in .venv and compile the message catalogues first.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Four workers on two cores: most bot tests wait on Telegram's per-chat pace, not on the CPU (12.8 min → 7 min).
PYTEST_ARGS ?= -n 4 --dist worksteal

.PHONY: run test setup venv locales messages bench clean chromium guide-shots

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

locales: $(STAMP)
	$(VENV)/bin/pybabel compile -d locales -D messages --statistics

setup: venv locales
	$(VENV)/bin/onegrid setup

run: setup
	$(VENV)/bin/onegrid serve

# The layer contracts (pyproject.toml [tool.importlinter]) first: a wrong-way import fails before any test runs.
test: venv locales
	$(VENV)/bin/lint-imports --no-cache --no-logo
	$(PY) -m pytest $(PYTEST_ARGS)

# Re-extract user-facing strings after changing them; new zh_CN text can come from locales/incoming/*.json.
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg -k _ -k __ -k N_ --no-location --sort-output \
	  --project onegrid -o locales/messages.pot .
	$(VENV)/bin/pybabel update --no-fuzzy-matching --ignore-obsolete -i locales/messages.pot -d locales -D messages
	$(PY) tools/i18n_fill.py

# Debian's Chromium for the sandbox console's browser test (tests/console/test_browser.py), with fonts
# for Chinese text and emoji in its screenshots. Installs only what is missing; needs root (CI is).
BROWSER_PACKAGES := chromium fonts-wqy-microhei fonts-noto-color-emoji
chromium:
	@dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq >/dev/null && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES) >/dev/null; \
	  else echo "note: not root, so $(BROWSER_PACKAGES) are not installed; the browser test will be skipped"; fi; }

# The role guides' pictures (docs/img/<lang>/*.png), taken from the sandbox console by a real browser.
guide-shots: venv locales chromium
	ONEGRID_GUIDE_SHOTS=1 $(PY) -m pytest tests/console/test_guide_shots.py -q

bench: venv
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/intake.py
	$(PY) bench/grid_lookup.py --grids 50000
	$(PY) bench/delivery.py

clean:
	rm -rf $(VENV) var build *.egg-info
