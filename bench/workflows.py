"""The workflows the benchmarks run (written to the run's work directory)."""

from __future__ import annotations

from pathlib import Path

# 1. overhead: static + jq + jq + service_request.headers (a pre-proxy
# workflow; two jq nodes, so the jq worker round trips are in the figure)
OVERHEAD = """\
nodes:
  - name: SETTINGS
    type: static
    values:
      tenant: acme
      tier: gold
  - name: TAG
    type: jq
    input: SETTINGS
    jq: '.tenant + "-" + .tier'
  - name: HEADERS
    type: jq
    inputs:
      tag: TAG
      settings: SETTINGS
    jq: '{"x-bench-tag": .tag, "x-tenant": .settings.tenant}'
    output: service_request.headers
"""

# 2. "combine two APIs": call both, join with jq, answer with exit
COMBINE = """\
match:
  paths: [/combine]
nodes:
  - name: USER
    type: call
    url: {base}/api/a
  - name: ORDERS
    type: call
    url: {base}/api/b
  - name: JOIN
    type: jq
    inputs:
      user: USER.body
      orders: ORDERS.body
    jq: '{{user: .user, orders: .orders}}'
  - name: EXIT
    type: exit
    status: 200
    inputs:
      body: JOIN
"""


def fanout(n: int, base: str, delay_ms: int = 100) -> str:
    """N independent calls to an API answering in `delay_ms`, joined by jq."""
    calls = "".join(f"  - name: CALL{i}\n    type: call\n    url: {base}/delay/{delay_ms}\n" for i in range(n))
    inputs = "".join(f"      c{i}: CALL{i}.body\n" for i in range(n))
    return (
        f"match:\n  paths: [/fanout{n}]\nnodes:\n{calls}"
        f"  - name: JOIN\n    type: jq\n    inputs:\n{inputs}    jq: '[.[]]'\n"
        "  - name: EXIT\n    type: exit\n    inputs:\n      body: JOIN\n"
    )


# 4. concurrency: each flow makes one 50 ms call, then goes upstream
CALL_THEN_PROXY = """\
nodes:
  - name: LOOKUP
    type: call
    url: {base}/delay/50
    outputs:
      status: service_request.headers.x-lookup-status
"""

# 5. memory: a bit of everything on the request path
MEMORY = """\
nodes:
  - name: SETTINGS
    type: static
    values:
      tenant: acme
  - name: USER
    type: call
    url: {base}/api/a
  - name: HEADERS
    type: jq
    inputs:
      settings: SETTINGS
      user: USER.body
      ua: request.headers.user-agent
    jq: '{{"x-tenant": .settings.tenant, "x-user": (.user.id | tostring), "x-ua": .ua}}'
    output: service_request.headers
  - name: REMEMBER
    type: property
    property: kong.ctx.shared.user
    input: USER.body
"""


def selected(i: int) -> str:
    """One of the 100 workflows (each selects its own path)."""
    return f"match:\n  paths: [/wf/{i:03d}]\n" + OVERHEAD


def write(workdir: Path, name: str, text: str) -> Path:
    path = workdir / f"{name}.yaml"
    path.write_text(text)
    return path


def write_dir(workdir: Path, name: str, texts: dict[str, str]) -> Path:
    d = workdir / name
    d.mkdir(exist_ok=True)
    for file, text in texts.items():
        (d / f"{file}.yaml").write_text(text)
    return d
