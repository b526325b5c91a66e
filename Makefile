# Two commands, each from a fresh clone (they create .venv and install what they need):
#   make demo   set up, advise on a built-in example, then train and evaluate the lora_cls recipe offline
#   make test   set up, then run the test suite (what CI runs)
#   make check  the tier that trains nothing (under 2 minutes)
# Both run on two pytest-xdist workers with one torch thread each (OMP_NUM_THREADS=1): on our 2-core machines that
# halves the suite against one worker with two threads.
#
# torch is installed first, on its own, so that pip does not pick a build for us: TORCH_SPEC is
# `torch==2.13.0`, which on our CPU machines takes the CPU wheel they keep on disk. Elsewhere, on a
# machine without a CUDA GPU, pass the CPU build explicitly, e.g.
#   make test TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu"
PYTHON ?= python3
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
# SkyPilot, in its own venv (it pins an older click): its parser checks `export --format skypilot` in the tests
SKY := .venv-sky
# llm-compressor, in its own venv (it pins an older transformers): the tests run `export --format gptq` there
GPTQ := .venv-gptq

.PHONY: demo test check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e '.[train]'
	touch $@

# The test tools, and what the export tests check for real (ONNX Runtime; llama.cpp's bindings, which pip compiles:
# about 4 minutes on 2 cores, once). The demo does not need them.
$(VENV)/.dev: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[train,dev]'
	touch $@

$(SKY)/.installed:
	$(PYTHON) -m venv $(SKY)
	$(SKY)/bin/python -m pip install --quiet 'skypilot>=0.10,<1'
	touch $@

$(GPTQ)/.installed: pyproject.toml
	$(PYTHON) -m venv $(GPTQ)
	$(GPTQ)/bin/python -m pip install --quiet $(TORCH_SPEC)
	$(GPTQ)/bin/python -m pip install --quiet -e '.[train,gptq]'
	touch $@

demo: $(VENV)/.installed
	$(BIN)/adaptkit advise --answers examples/answers/support_tickets.yaml
	$(BIN)/adaptkit run lora_cls output_dir=runs/demo-lora_cls --overwrite

test: $(VENV)/.dev $(SKY)/.installed $(GPTQ)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n 2

check: $(VENV)/.dev
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -m "not train" -q -n 2

bench: $(VENV)/.installed
	$(BIN)/python benchmarks/startup.py
	$(BIN)/python benchmarks/memory_calibration.py
	$(BIN)/python benchmarks/runner_vs_peft_loop.py

clean:
	rm -rf $(VENV) $(SKY) $(GPTQ) build *.egg-info .pytest_cache
