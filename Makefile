# Two commands do all set-up on a fresh machine (Python 3.10+, pip, no GPU):
#   make demo   installs into .venv and runs the pipeline on the bundled sample slide
#   make test   installs into .venv and runs the test suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
OUT ?= out/demo
SLIDE := wsicell/data/CMU-1-Small-Region.svs

.PHONY: demo test test-fast test-tiatoolbox lint install tiatoolbox clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The whole pipeline on the bundled sample slide, each step a plain wsicell command.
demo: $(STAMP)
	rm -rf $(OUT)
	$(BIN)/wsicell extract $(SLIDE) --store $(OUT)/cells.zarr
	$(BIN)/wsicell info --store $(OUT)/cells.zarr
	$(BIN)/wsicell map $(SLIDE) --store $(OUT)/cells.zarr --nuclei-only --out $(OUT)/nuclei.geojson --png
	$(BIN)/wsicell train --store $(OUT)/cells.zarr --out $(OUT)/run --config configs/demo.yaml
	$(BIN)/wsicell embed --store $(OUT)/cells.zarr --model $(OUT)/run
	$(BIN)/wsicell cluster --store $(OUT)/cells.zarr -k 6 --context-radius 20
	$(BIN)/wsicell map $(SLIDE) --store $(OUT)/cells.zarr --out $(OUT)/CMU-1-Small-Region.geojson --png
	$(BIN)/wsicell gallery --store $(OUT)/cells.zarr --out $(OUT)/gallery.png
	$(BIN)/wsicell export --store $(OUT)/cells.zarr --anndata $(OUT)/study.h5ad
	$(BIN)/wsicell summarize --store $(OUT)/cells.zarr --out $(OUT)/study.csv --png
	@echo "Done: open $(SLIDE) in QuPath and drag $(OUT)/CMU-1-Small-Region.geojson onto it"
	@echo "      (the nuclei alone, as extracted: $(OUT)/nuclei.geojson);"
	@echo "      pictures: $(OUT)/CMU-1-Small-Region.png, $(OUT)/gallery.png; composition: $(OUT)/study.png"
	@echo "      study table: $(OUT)/study.csv; AnnData for scanpy/squidpy: $(OUT)/study.h5ad"

# The main suite in .venv, then the tiatoolbox backend's tests in a second environment
# (.venv-tia, layered over .venv) so that tiatoolbox's pins never touch the main one.
test: $(STAMP)
	$(BIN)/ruff check wsicell tests benchmarks
	$(BIN)/python -m pytest -q -ra
	$(MAKE) test-tiatoolbox

# The development lane: everything but training, multi-process and end-to-end tests
# (marked `slow`); CI runs `make test`, which runs them all.
test-fast: $(STAMP)
	$(BIN)/ruff check wsicell tests benchmarks
	$(BIN)/python -m pytest -q -ra -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check wsicell tests benchmarks

# Optional deep-learning segmenters (HoVer-Net & co.). tiatoolbox pins torch/numpy/dask
# tightly, so it goes in without its pins, over the measured set of its import-time needs.
# The main environment's versions are frozen as constraints first, so nothing in it moves.
tiatoolbox: $(STAMP)
	$(BIN)/python -m pip list --format=freeze --exclude-editable > $(VENV)/constraints-main.txt
	$(BIN)/python -m pip install --quiet -c $(VENV)/constraints-main.txt -r requirements-tiatoolbox.txt
	$(BIN)/python -m pip install --quiet --no-deps tiatoolbox==2.1.3

# A second environment for CI: .venv-tia sees everything in .venv (a site dir added by a
# .pth file) and adds tiatoolbox and its needs, with .venv's versions as constraints.
TIA := .venv-tia
TIA_STAMP := $(TIA)/.installed
$(TIA_STAMP): $(STAMP) requirements-tiatoolbox.txt
	rm -rf $(TIA)
	$(PYTHON) -m venv $(TIA)
	$(BIN)/python -c "import site; print('import site; site.addsitedir(%r)' % site.getsitepackages()[0])" \
		> $$($(TIA)/bin/python -c "import site; print(site.getsitepackages()[0])")/_wsicell_main_env.pth
	$(BIN)/python -m pip list --format=freeze --exclude-editable > $(TIA)/constraints-main.txt
	$(TIA)/bin/python -m pip install --quiet -c $(TIA)/constraints-main.txt -r requirements-tiatoolbox.txt
	$(TIA)/bin/python -m pip install --quiet --no-deps tiatoolbox==2.1.3
	touch $(TIA_STAMP)

test-tiatoolbox: $(TIA_STAMP)
	$(TIA)/bin/python -m pytest -q -ra tests/test_segment_tiatoolbox.py tests/test_export_geojson.py -k "tiatoolbox or annotation"

clean:
	rm -rf $(VENV) $(TIA) out
