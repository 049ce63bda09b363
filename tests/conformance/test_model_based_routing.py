"""Kong conformance of app/_cookbooks/model-based-routing.md ("Model-Based
Routing"), through a real mitmdump running the page's `multi-provider.yaml`
(tests/conformance/decks/model-based-routing.yaml, copied verbatim) with
the page's `DECK_*` variables exported, as `deck gateway sync` reads them.

What cannot run here, and its stand-in:
- Kong's proxy listener `http://localhost:8000`, which the `call` node
  calls back into: mitmdump in reverse mode listening on a free port, and
  the one URL in the file naming that port (docs/coming-from-kong.md, "A
  `call` to Kong's own proxy"). With `--listen-port 8000` the file runs
  unchanged.
- Key Auth: `_keyauth.KeyAuthStandIn`, configured by the file's `key-auth`
  entities and consumers.
- AI Prompt Decorator + AI Proxy Advanced + OpenAI/Bedrock: both services'
  placeholder upstream `http://httpbin.konghq.com/anything` (AI Proxy
  Advanced sends elsewhere in Kong) is written as one local mock's URL.
  (Not `_standins.TestHosts`: its `server_connect` address rewrite stops
  mitmproxy reusing server connections, and the `call` node's keep-alive
  connection into mitmdump then stalls after five requests.) A request
  without `model` is the model-selection call and gets the page's OpenAI
  chat-completion shape with the tier as content; a request with `model`
  is the chat call and gets a completion with `X-Kong-LLM-Model` naming the
  model AI Proxy Advanced's `model_alias` maps that tier to.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conformance._support import config_error
from tests.harness import DEFAULT_SCRIPT, Mitmdump, MockServer, RecordedRequest, Reply, free_port

PAGE = "app/_cookbooks/model-based-routing.md"
HERE = Path(__file__).parent
DECK = HERE / "decks" / "model-based-routing.yaml"
SCRIPTS = [HERE / "_standins.py", HERE / "_keyauth.py", DEFAULT_SCRIPT]
# the page's "Apply the Kong configuration" exports
DECK_ENV = {
    "DECK_OPENAI_SELECTOR_SLM": "o3-mini",
    "DECK_OPENAI_FAST_MODEL": "gpt-4o-mini",
    "DECK_BEDROCK_SMART_MODEL": "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    "DECK_INTERNAL_ROUTER_KEY": "internal-router-key",
    "DECK_OPENAI_TOKEN": "Bearer sk-test",
    "DECK_AWS_ACCESS_KEY_ID": "your-access-key-id",
    "DECK_AWS_SECRET_ACCESS_KEY": "your-secret-access-key",
    "DECK_AWS_REGION": "us-east-1",
}
MODEL_FOR_ALIAS = {"fast": DECK_ENV["DECK_OPENAI_FAST_MODEL"], "smart": DECK_ENV["DECK_BEDROCK_SMART_MODEL"]}
SIMPLE = {"model": "fast", "messages": [{"role": "user", "content": "Hi there! What's 2 + 2?"}], "max_tokens": 100}
COMPLEX = {"model": "fast", "messages": [{"role": "user", "content": (
    "Write a Python function to implement binary search with detailed comments explaining the algorithm, "
    "including time complexity analysis and edge case handling.")}], "max_tokens": 500}
NODES = ["EXTRACT_PROMPT", "EXTRACT_AUTH", "CALL_MODEL_SELECTOR", "EXTRACT_MODEL", "UPDATE_REQUEST"]


def completion(model: str, content: str) -> dict[str, Any]:
    """The page's response shape (OpenAI chat completion)."""
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 1234567890, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


def llm(req: RecordedRequest) -> Reply:
    body = req.json()
    if "model" not in body:  # the model-selection route: the decorated prompt, classified
        prompt = body["messages"][-1]["content"]
        tier = "smart" if "function" in prompt or "Explain" in prompt else "fast"
        return Reply(json=completion("o3-mini", f"  {tier}\n"))  # whitespace: the page's gsub trims it
    model = MODEL_FOR_ALIAS[body["model"]]
    return Reply(json=completion(model, f"answer from {model}"), headers={"X-Kong-LLM-Model": model})


@pytest.fixture(scope="module")
def upstream() -> Iterator[MockServer]:
    with MockServer() as server:
        server.route("*", "/*", llm)
        yield server


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, mitm_confdir, upstream: MockServer) -> Iterator[Mitmdump]:
    port = free_port()
    deck = tmp_path_factory.mktemp("model-based-routing") / "multi-provider.yaml"
    text = DECK.read_text()
    assert text.count("http://localhost:8000/") == 1 and text.count("url: http://httpbin.konghq.com/anything") == 2
    deck.write_text(text.replace("http://localhost:8000/", f"http://localhost:{port}/")
                    .replace("url: http://httpbin.konghq.com/", f"url: {upstream.url}/"))
    env = {**DECK_ENV, "KEYAUTH_STANDIN_DECK": str(deck)}
    mitm = Mitmdump(deck, script=SCRIPTS, mode=f"reverse:{upstream.url}", port=port,
                    confdir=mitm_confdir, env=env, quiet=True)
    try:
        yield mitm
    finally:
        code = mitm.stop()
        print(f"\n----- {mitm!r} exit={code} log tail -----\n{mitm.log_tail(60)}")


def chat(proxy: Mitmdump, body: dict[str, Any], **headers: str) -> httpx.Response:
    """The page's `curl -X POST http://localhost:8000/chat -H "apikey: demo-consumer-key" -d @prompt.json`."""
    headers.setdefault("apikey", "demo-consumer-key")
    with proxy.client() as c:
        return c.post("/chat", json=body, headers=headers)


def sent_since(upstream: MockServer, before: int) -> tuple[list[RecordedRequest], list[RecordedRequest]]:
    """(model-selection requests, chat requests) the LLM stand-in got."""
    new = upstream.requests[before:]
    return [r for r in new if "model" not in r.json()], [r for r in new if "model" in r.json()]


@pytest.mark.parametrize("prompt,tier", [(SIMPLE, "fast"), (COMPLEX, "smart")], ids=["simple", "complex"])
def test_each_prompt_reaches_the_model_of_its_tier(proxy, upstream, prompt, tier):
    """app/_cookbooks/model-based-routing.md "Try it out": the simple prompt's
    `X-Kong-LLM-Model` is `gpt-4o-mini` (fast tier), the complex prompt's the
    smart tier's model; Datakit "updates the original request body's `model`
    field" to the tier and leaves the rest of the body as the client sent it."""
    before = len(upstream.requests)
    r = chat(proxy, prompt)
    assert r.status_code == 200
    assert r.headers["x-kong-llm-model"] == MODEL_FOR_ALIAS[tier]
    selections, chats = sent_since(upstream, before)
    assert len(selections) == len(chats) == 1
    expected = copy.deepcopy(prompt)
    expected["model"] = tier
    assert chats[0].json() == expected
    assert chats[0].path == "/anything"  # the default-llm service's path, `/chat` stripped


def test_the_selector_gets_the_prompts_messages_through_the_model_selection_route(proxy, upstream):
    """app/_cookbooks/model-based-routing.md "How it works": "DataKit calls the
    `/model-selection` Route with the same prompt": EXTRACT_PROMPT's
    `{"messages": .messages}` is the call's body, sent as JSON; the call
    goes through the gateway (its route's key-auth accepts the
    internal-router key and hides it) to that route's service."""
    before = len(upstream.requests)
    chat(proxy, COMPLEX)
    (selection,), _ = sent_since(upstream, before)
    assert selection.json() == {"messages": COMPLEX["messages"]}
    assert selection.header("content-type", "").startswith("application/json")
    assert selection.path == "/anything"
    assert selection.header("apikey") is None  # hide_credentials on the model-selection route


def test_the_internal_key_replaces_the_clients_on_the_chat_request(proxy, upstream):
    """app/_cookbooks/model-based-routing.md, multi-provider.yaml: EXTRACT_AUTH
    (`{apikey: "internal-router-key"}`, `output: service_request.headers`)
    sets that header on the proxied request; the client's own key was hidden
    by key-auth and never reaches the LLM side."""
    before = len(upstream.requests)
    chat(proxy, SIMPLE)
    _, (sent,) = sent_since(upstream, before)
    assert sent.headers.get_all("apikey") == ["internal-router-key"]


def test_datakit_does_not_modify_the_response(proxy, upstream):
    """app/_cookbooks/model-based-routing.md: "DataKit does not modify the
    response to the client": the LLM side's answer arrives as it was sent."""
    r = chat(proxy, COMPLEX)
    assert r.json() == completion(MODEL_FOR_ALIAS["smart"], f"answer from {MODEL_FOR_ALIAS['smart']}")
    assert r.headers["content-type"].startswith("application/json")


@pytest.mark.parametrize("headers,message", [({}, "No API key found in request"), ({"apikey": "wrong"}, "Unauthorized")])
def test_without_a_valid_key_no_llm_is_called(proxy, upstream, headers, message):
    """app/_cookbooks/model-based-routing.md "Key Auth": "Without a valid API
    key, Kong returns `401 Unauthorized` before any LLM call"; Datakit,
    which calls the selector, runs after key-auth."""
    before = len(upstream.requests)
    with proxy.client() as c:
        r = c.post("/chat", json=SIMPLE, headers=headers)
    assert (r.status_code, r.json()) == (401, {"message": message})
    assert len(upstream.requests) == before


def test_the_debug_trace_shows_the_selected_tier(proxy, upstream):
    """app/_cookbooks/model-based-routing.md, multi-provider.yaml `debug: true`
    (app/_kong_plugins/datakit/index.md, "Debugging"): with
    `X-DataKit-Debug-Trace` every node of the page completes and
    EXTRACT_MODEL's output is the bare tier."""
    r = chat(proxy, COMPLEX, **{"X-DataKit-Debug-Trace": "1"})
    report = r.json()
    status = {n["name"]: n["status"] for n in report["nodes"]}
    assert {name: status[name] for name in NODES} == dict.fromkeys(NODES, "NODE_COMPLETE")
    (done,) = [e for e in report["events"] if e["action"] == "complete" and e["name"] == "EXTRACT_MODEL"]
    assert [v["value"] for v in done["values"] if v["key"] == "$self"] == ["smart"]


def test_an_unset_deck_variable_refuses_the_file(tmp_path):
    """app/_cookbooks/model-based-routing.md "Export your environment
    variables" before `deck gateway sync`: decK refuses a state file naming
    an unset `DECK_` variable (app/deck/reference/env-variables.md); so does
    the loader, naming the file and the variable."""
    deck = tmp_path / "multi-provider.yaml"
    deck.write_text(DECK.read_text())
    env: dict[str, str | None] = {**DECK_ENV, "DECK_OPENAI_TOKEN": None}
    code, output = Mitmdump.run_and_expect_exit(deck, env=env)
    assert code != 0
    assert "environment variable 'DECK_OPENAI_TOKEN' present in state file but not set" in output
    assert str(deck) in output


SNIPPET = """\
nodes:
  - name: EXTRACT_PROMPT
    type: jq
    input: request.body
    output: prompt_data
    jq: '{messages: .messages}'
  - name: EXTRACT_AUTH
    type: jq
    input: request.headers
    output: auth_header
    jq: '{apikey: (.apikey // .Apikey)}'
  - name: CALL_MODEL_SELECTOR
    type: call
    url: http://localhost:8000/model-selection
    method: POST
    inputs:
      body: EXTRACT_PROMPT.prompt_data
      headers: EXTRACT_AUTH.auth_header
  - name: EXTRACT_MODEL
    type: jq
    input: CALL_MODEL_SELECTOR.body
    output: tier
    jq: .choices[0].message.content | rtrimstr("\\n") | ltrimstr("\\"")
  - name: UPDATE_REQUEST
    type: jq
    inputs:
      original: request.body
      selected: EXTRACT_MODEL.tier
    output: modified_body
    jq: .original | .model = (.selected | gsub("\\""; ""))
  - name: service_request
    inputs:
      body: UPDATE_REQUEST.modified_body
"""


@pytest.mark.parametrize("keep_last,named", [(True, "'service_request'"), (False, "'prompt_data'")])
def test_the_configuration_details_excerpt_is_not_a_config(tmp_path, keep_last, named):
    """app/_cookbooks/model-based-routing.md "Datakit: Route selection
    orchestration" shows an excerpt that differs from the file it applies:
    `output: prompt_data` names no node (an output connects to a node or an
    implicit node's field), and `service_request` is an implicit node, not
    one to declare. Kong's schema refuses both; so does the loader, naming
    them (the page's multi-provider.yaml is what runs)."""
    import yaml

    doc = yaml.safe_load(SNIPPET)
    if not keep_last:
        doc["nodes"] = doc["nodes"][:-1]
    output = config_error(tmp_path, doc)
    assert named in output
