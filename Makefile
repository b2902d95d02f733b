# qualitas developer entry points. `make demo` and `make test` work from a clean clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# The constraints file pins the torch/torchvision pair this machine image holds on disk.
CONSTRAINTS := constraints.txt
STAMP := $(VENV)/.installed

.PHONY: demo test test-fast lint bench clean install tf-env

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) pyproject.toml $(CONSTRAINTS)
	$(PIP) install --quiet -c $(CONSTRAINTS) torch torchvision
	$(PIP) install --quiet -c $(CONSTRAINTS) -e ".[train,export,openvino,data,importance,pretrained,ray,serve,dev]"
	# The MTCNN face detector's weights ship in this wheel; its own pins would replace torch.
	$(PIP) install --quiet --no-deps facenet-pytorch==2.6.0
	touch $(STAMP)

install: $(STAMP)

# Optional: TensorFlow + onnx2tf for `qualitas export --format saved_model`, in their own
# environment (their exact pins conflict with ours; ~2.6 GB, ~2 min). Not part of `install`.
TF_VENV := .venv-tf
$(TF_VENV)/.installed: requirements-tf.txt
	$(PYTHON) -m venv $(TF_VENV)
	$(TF_VENV)/bin/pip install --quiet --upgrade pip
	$(TF_VENV)/bin/pip install --quiet -r requirements-tf.txt
	touch $@

tf-env: $(TF_VENV)/.installed

demo: $(STAMP)
	$(PY) -m qualitas.demo --out demo-output

test: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks
	$(PY) -m pytest -q -p no:cacheprovider tests

test-fast: $(STAMP)
	$(PY) -m pytest -q -p no:cacheprovider -m "not slow" tests

lint: $(STAMP)
	$(PY) -m ruff check src tests benchmarks
	$(PY) -m ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) $(TF_VENV) demo-output build *.egg-info
