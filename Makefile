# musezoo: `make demo`, `make test`, `make bench`. Each sets up .venv itself.
# torch is installed first and pinned, so pip never pulls another build behind our back.
# On a CUDA machine the same pin gets PyPI's CUDA build; pick another with e.g.
#   make test TORCH="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python
STAMP := $(VENV)/.musezoo-installed

.PHONY: setup demo test bench wheels clean

setup: $(STAMP)

$(STAMP): pyproject.toml plugins/render/pyproject.toml plugins/musegan/pyproject.toml plugins/music_transformer/pyproject.toml plugins/coconet/pyproject.toml plugins/chorales/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e '.[dev,render]' -e plugins/render -e plugins/chorales -e plugins/musegan -e plugins/music_transformer -e plugins/coconet
	touch $(STAMP)

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) -m pip install -q -e '.[bench]'
	$(PY) benchmarks/run.py

# The core's and the plugins' wheels into dist/ (git-ignored), each plugin's carrying its pretrained model.
# --no-deps: only musezoo's own wheels, never torch and its CUDA libraries (gigabytes) from PyPI; install
# them into an environment that already has the torch you want (see the README, "Install from wheels").
wheels: setup
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist/ . plugins/render plugins/chorales plugins/musegan plugins/music_transformer plugins/coconet
	@ls dist/*.whl

clean:
	rm -rf $(VENV) out dist .pytest_cache
