# Datakit for mitmproxy — common tasks. `uv run just --list`

set shell := ["bash", "-euo", "pipefail", "-c"]
export PYENV_VERSION := "3.12.1:3.11.7"

# run the proxy with the shipped workflows
run *ARGS:
    uv run mitmdump -s addon/datakit.py --set confdir=certs {{ARGS}}

# all tests
test *ARGS:
    uv run pytest {{ARGS}}

# lint and type checks (CI runs both before the tests)
lint:
    uv run ruff check
    uv run mypy

# what CI runs
ci:
    bash .ci/run

# regenerate the shipped JSON Schema from the node modules
schema:
    uv run python -c "from mitmdatakit.schema import write_schema; write_schema()"

# benchmarks (prints a table)
bench *ARGS:
    uv run python -m bench {{ARGS}}

# offline demo: local mock APIs + mitmdump + requests through it (--keep: serve until Ctrl-C)
demo *ARGS:
    uv run python -m mitmdatakit.demo {{ARGS}}

# regenerate docs/img/mitmweb-datakit.png (headless chromium)
screenshot:
    uv run python scripts/screenshot_mitmweb.py
