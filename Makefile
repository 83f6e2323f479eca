# The two commands of the README. Both set everything up first and are safe to repeat.
.PHONY: demo classroom test lint bench screenshots setup mutants soak

demo:  ## set up, then run the app at http://localhost:8501
	bash scripts/setup.sh
	.venv/bin/streamlit run app.py

classroom:  ## set up, then serve the app to the room (every address of this machine); see docs/DEPLOY.md
	bash scripts/setup.sh
	@if [ -z "$$FMNIST_TEACHER_KEY" ]; then echo "No class board: to follow the room's runs on the Class page, start with a key of your own, e.g. FMNIST_TEACHER_KEY=choose-a-key make classroom (docs/DEPLOY.md)"; fi
	.venv/bin/streamlit run app.py --server.address 0.0.0.0

test:  ## set up (with Chromium), then run the whole test suite with an empty HOME and TMPDIR, as on a fresh machine
	bash scripts/setup.sh --test
	.venv/bin/ruff check .
	fresh=$$(mktemp -d) && mkdir "$$fresh/home" "$$fresh/tmp" && \
	  HOME="$$fresh/home" TMPDIR="$$fresh/tmp" .venv/bin/python -m pytest -q; rc=$$?; rm -rf "$$fresh"; exit $$rc

setup:
	bash scripts/setup.sh

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

bench:
	.venv/bin/python -m fmnist bench

screenshots:  ## needs the app running on :8501
	.venv/bin/python scripts/screenshots.py http://localhost:8501 docs/screenshots

mutants:  ## mutation testing (docs/RELIABILITY.md), in a copy of HEAD; hours on 2 cores
	rm -rf /tmp/fmnist-mutants && mkdir -p /tmp/fmnist-mutants && git archive HEAD | tar -x -C /tmp/fmnist-mutants
	cd /tmp/fmnist-mutants && $(CURDIR)/.venv/bin/mutmut run --max-children 2; $(CURDIR)/.venv/bin/mutmut results

soak:  ## 20 training runs through one job manager: memory and threads after each (docs/RELIABILITY.md)
	.venv/bin/python scripts/soak_jobs.py 20
