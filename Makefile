# Everything installs into a local virtual environment from constraints.txt.
#   make demo   train a small model on sklearn's digits with keras_norms layers
#   make test   ruff, then the full test suite once per Keras backend
#   make test-oldest  the test suite, JAX backend, on the oldest Keras and
#               numpy pyproject.toml allows (constraints-oldest.txt)
#   make docs   build the documentation site (strict) into site/, check
#               that the API reference shows every public name, and check
#               its internal links
#   make dist   build the sdist and wheel into dist/ and check them (twine)
#   make tutorials        run every tutorial at full size (the docs figures)
#   make bench  time every layer and whole models (ResNet50, folding)
#               against Keras core and native kernels, then render
#               docs/benchmarks.md (machine otherwise idle)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
EXTRAS := tensorflow-cpu,jax,torch,examples
# Extra pip arguments, e.g. on a machine without a local CPU wheel of torch:
#   make install PIP_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
PIP_ARGS ?=
# The oldest Keras and numpy that pyproject.toml allows (3.8, 1.26) with
# jax 0.4.38 and the test tools, without TensorFlow or torch: what a JAX
# user of the oldest Keras has (constraints-oldest.txt).
OLDEST_VENV := .venv-oldest
OLDEST_BIN := $(OLDEST_VENV)/bin
OLDEST_STAMP := $(OLDEST_VENV)/.installed

.PHONY: install demo test test-oldest lint format docs dist bench bench-smoke \
	tutorials tutorials-smoke clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt $(PIP_ARGS) \
		-e ".[$(EXTRAS)]" --group dev
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/digits_demo.py

lint: $(STAMP)
	$(BIN)/ruff check keras_norms tests examples benchmarks scripts conftest.py
	$(BIN)/ruff format --check keras_norms tests examples benchmarks scripts \
		conftest.py

format: $(STAMP)
	$(BIN)/ruff check --fix keras_norms tests examples benchmarks scripts conftest.py
	$(BIN)/ruff format keras_norms tests examples benchmarks scripts conftest.py

test: $(STAMP) lint
	PYTHON=$(BIN)/python bash scripts/test_matrix.sh

# --clear: nothing left over from an older pin (or a backend installed by
# hand, which would un-skip the tests that need it).
$(OLDEST_STAMP): pyproject.toml constraints-oldest.txt
	$(PYTHON) -m venv --clear $(OLDEST_VENV)
	$(OLDEST_BIN)/python -m pip install --quiet --upgrade pip
	$(OLDEST_BIN)/python -m pip install --quiet -c constraints-oldest.txt \
		$(PIP_ARGS) -e ".[jax]" --group test scikit-learn
	touch $(OLDEST_STAMP)

# (The property tests and the slow ones, learning runs and whole
# keras.applications models, are left to `make test`: they exercise the
# same code as the fast tests, and cost minutes on JAX.)
test-oldest: $(OLDEST_STAMP)
	KERAS_BACKEND=jax $(OLDEST_BIN)/python -m pytest -q -p no:cacheprovider \
		--ignore=tests/test_ops_properties.py -m "not slow"

# The site, strict, then checks that the API pages show every public name
# (typed, no private ones) and that every internal link and anchor exists.
docs: $(STAMP)
	# (No --quiet: it also hides the warnings from --strict.)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site
	$(BIN)/python scripts/check_api_reference.py site
	$(BIN)/python scripts/check_links.py site

# The sdist and wheel, checked as PyPI would (README rendering, metadata).
dist: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --quiet --outdir dist .
	$(BIN)/twine check --strict dist/*

# Speed of every layer against Keras core and the native kernels, of whole
# models (training step, folding), the results page in docs/, and
# large-mean accuracy (machine otherwise idle!).
bench: $(STAMP)
	for backend in tensorflow jax torch; do \
		KERAS_BACKEND=$$backend $(BIN)/python benchmarks/bench_layers.py && \
		KERAS_BACKEND=$$backend $(BIN)/python benchmarks/bench_models.py && \
		KERAS_BACKEND=$$backend $(BIN)/python benchmarks/large_mean_accuracy.py \
		|| exit 1; \
	done
	$(BIN)/python benchmarks/render_results.py

# The benchmark suite once at a tiny size: it keeps working (no timings
# are asserted).
bench-smoke: $(STAMP)
	for backend in tensorflow jax torch; do \
		KERAS_BACKEND=$$backend $(BIN)/python benchmarks/bench_layers.py \
		--tiny && \
		KERAS_BACKEND=$$backend $(BIN)/python benchmarks/bench_models.py \
		--tiny || exit 1; \
	done

# The tutorials (examples/tutorials/) at full size: they write the figures
# and numbers that docs/tutorials/ shows. Default backend torch; choose with
# KERAS_BACKEND=... make tutorials.
tutorials: $(STAMP)
	PYTHON=$(BIN)/python bash scripts/run_tutorials.sh

# Every tutorial at a tiny size, so they keep working (CI).
tutorials-smoke: $(STAMP)
	KERAS_NORMS_SMOKE=1 PYTHON=$(BIN)/python bash scripts/run_tutorials.sh

clean:
	rm -rf $(VENV) $(OLDEST_VENV) .pytest_cache .ruff_cache dist site
