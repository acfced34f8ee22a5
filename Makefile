# GenbaGate — make demo | make test | make lint | make bench | make chaos
# `make test` and `make demo` install what they need: the venv, the Python packages, and (as root)
# the Debian packages the tests use. Not root: it prints the apt-get command to run and stops.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# pcscd + libccid + vsmartcard-vpcd: the PC/SC (RC-S300) reader tests' real pcscd and virtual reader;
# swig + libpcsclite-dev: pip builds pyscard from source (PyPI has no Linux wheels).
# libreoffice-calc-nogui + poppler-utils + fonts-ipaexfont-mincho: the safety documents' render tests print the
# Excel forms to PDF (soffice --headless), read the PDF (pdfinfo, pdftotext) and draw docs/forms (pdftoppm).
APT_PACKAGES := postgresql mosquitto espeak-ng mtools dosfstools fdisk cloud-init \
                pcscd libccid vsmartcard-vpcd swig libpcsclite-dev \
                libreoffice-calc-nogui poppler-utils fonts-ipaexfont-mincho

.PHONY: test demo lint bench chaos forms-png system-deps venv clean

$(VENV)/.installed: pyproject.toml | system-deps  # pyscard builds against libpcsclite-dev
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "GenbaGate needs Python >= 3.11 (found " + sys.version.split()[0] + ")")'
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	@touch $@

venv: $(VENV)/.installed

system-deps:
	@missing=""; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	{ command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; } || missing="$$missing mosquitto"; \
	command -v espeak-ng >/dev/null || missing="$$missing espeak-ng"; \
	command -v mcopy >/dev/null || missing="$$missing mtools"; \
	{ command -v mkfs.vfat >/dev/null || [ -x /usr/sbin/mkfs.vfat ] || [ -x /sbin/mkfs.vfat ]; } || missing="$$missing dosfstools"; \
	{ command -v sfdisk >/dev/null || [ -x /usr/sbin/sfdisk ] || [ -x /sbin/sfdisk ]; } || missing="$$missing fdisk"; \
	command -v cloud-init >/dev/null || missing="$$missing cloud-init"; \
	{ command -v pcscd >/dev/null || [ -x /usr/sbin/pcscd ]; } || missing="$$missing pcscd"; \
	[ -d /usr/lib/pcsc/drivers/ifd-ccid.bundle ] || missing="$$missing libccid"; \
	[ -e /usr/lib/pcsc/drivers/serial/libifdvpcd.so ] || missing="$$missing vsmartcard-vpcd"; \
	command -v swig >/dev/null || missing="$$missing swig"; \
	[ -e /usr/include/PCSC/winscard.h ] || missing="$$missing libpcsclite-dev"; \
	command -v soffice >/dev/null || missing="$$missing libreoffice-calc-nogui"; \
	command -v pdftoppm >/dev/null || missing="$$missing poppler-utils"; \
	[ -e /usr/share/fonts/opentype/ipaexfont-mincho/ipaexm.ttf ] || missing="$$missing fonts-ipaexfont-mincho"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing system packages:$$missing"; \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  else \
	    echo "Missing system packages:$$missing" >&2; \
	    echo "Run: sudo apt-get install -y$$missing   then run make again." >&2; exit 1; \
	  fi; \
	fi

test: system-deps venv
	$(VENV)/bin/pytest -q

demo: system-deps venv
	$(PY) -m server.demo

lint: venv
	$(VENV)/bin/ruff check server firmware protocol provisioning tests
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: system-deps venv
	$(PY) tests/bench/gate.py
	$(PY) tests/bench/ingest.py
	$(PY) tests/bench/drain.py
	$(PY) tests/bench/month.py
	$(PY) tests/bench/reports.py

# Real processes on loopback, a scripted day through broker, server, gate, network, disk and clock faults,
# then the fuzzer's and the API's rows: one table (README "Reliability"). Exit 1 if any row lost or doubled a tap.
chaos: system-deps venv
	$(PY) tests/chaos/run.py

# The pictures of the printed safety documents in README.md (docs/forms/*.png), from a demo-like site.
forms-png: system-deps venv
	$(PY) tests/support/render_forms.py docs/forms

clean:
	rm -rf $(VENV) .demo .pytest_cache
