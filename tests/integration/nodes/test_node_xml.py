"""`xml_to_json` and `json_to_xml`: XML bodies, xpath, attribute blocks, round trips, and XML attacks (billion laughs, external entities) refused fast.

Through a real mitmdump with real HTTP (the fixtures: conftest.py here)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.harness import Reply

BOOKS = """<?xml version="1.0" encoding="UTF-8"?>
<catalog>
  <book id="1" lang="en"><title>Dune</title><price>9.99</price><available>true</available></book>
  <book id="2" lang="fr"><title>Vendredi</title><price>7</price><available>false</available></book>
  <book id="3" lang="en"><title>Emma</title><price>null</price><available>true</available></book>
</catalog>"""

BOOKS_JSON = {
    "catalog": {
        "book": [
            {"@id": 1, "@lang": "en", "title": "Dune", "price": 9.99, "available": True},
            {"@id": 2, "@lang": "fr", "title": "Vendredi", "price": 7, "available": False},
            {"@id": 3, "@lang": "en", "title": "Emma", "price": None, "available": True},
        ]
    }
}


@pytest.mark.parametrize("content_type", ["text/xml", "application/xml", "application/soap+xml; charset=utf-8"])
def test_xml_to_json_accepts_xml_bodies(c, api, content_type):
    r = c.post(f"{api.url}/xml-to-json/x", content=BOOKS.encode(), headers={"Content-Type": content_type})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.json() == BOOKS_JSON


def test_xml_to_json_spec_example(c, api):
    r = c.post(f"{api.url}/xml-to-json/x", content=b"<root><a>1</a></root>", headers={"Content-Type": "text/xml"})
    assert r.json() == {"root": {"a": 1}}


def test_xml_xpath_selects_a_subtree(c, api):
    r = c.post(f"{api.url}/xml-xpath/x", content=BOOKS.encode(), headers={"Content-Type": "application/xml"})
    assert r.status_code == 200, r.text
    assert r.json() == {"title": ["Dune", "Emma"]}


def test_xml_attributes_block_and_back(c, api):
    doc = '<order id="7"><item sku="a1" qty="2">pen</item><item sku="b2" qty="1">ink</item><note>null</note></order>'
    r = c.post(f"{api.url}/xml-attr-block/x", content=doc.encode(), headers={"Content-Type": "text/xml"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["json"] == {
        "order": {
            "#attr": {"id": 7},
            "item": [
                {"#attr": {"sku": "a1", "qty": 2}, "#text": "pen"},
                {"#attr": {"sku": "b2", "qty": 1}, "#text": "ink"},
            ],
            "note": None,
        }
    }
    assert out["xml"] == doc


def test_json_to_xml_through_the_proxy(c, api):
    body = {"order": {"@id": "7", "item": [{"@sku": "a1", "#text": "pen"}, {"@sku": "b2", "#text": "ink"}], "paid": True}}
    r = c.post(f"{api.url}/json-to-xml/x", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/xml"
    assert r.text == '<order id="7"><item sku="a1">pen</item><item sku="b2">ink</item><paid>true</paid></order>'
    # several keys: wrapped in the default root element
    r = c.post(f"{api.url}/json-to-xml/x", json={"a": 1, "b": [1, 2]})
    assert r.text == "<root><a>1</a><b>1</b><b>2</b></root>"


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<lolz>&lol9;</lolz>"""


def _rss_kib(pid: int | None) -> int:
    assert pid is not None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_billion_laughs_is_rejected_fast_with_memory_flat(c, api, proxy):
    c.post(f"{api.url}/xml-to-json/x", content=b"<warm>1</warm>", headers={"Content-Type": "text/xml"})
    rss_before = _rss_kib(proxy.pid)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        r = c.post(f"{api.url}/xml-to-json/x", content=BILLION_LAUGHS.encode(), headers={"Content-Type": "text/xml"})
        timings.append(time.perf_counter() - started)
        assert r.status_code == 500
        body = r.json()
        assert body["node"]["name"] == "X2J"
        assert "DOCTYPE" in body["error"]
    rss_after = _rss_kib(proxy.pid)
    print(f"billion laughs rejected in {min(timings) * 1000:.1f} ms (max {max(timings) * 1000:.1f} ms), RSS {rss_before} -> {rss_after} KiB")
    assert max(timings) < 0.5, timings  # the full expansion would be 3 GB of "lol"
    assert rss_after - rss_before < 20 * 1024


def test_external_entities_are_rejected_without_fetching(c, api):
    fetched = api.requests_for("/xxe/evil.dtd")
    api.route("GET", "/xxe/evil.dtd", Reply(body='<!ENTITY leak "LEAKED">'))
    documents = [
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>',
        f'<?xml version="1.0"?><!DOCTYPE r SYSTEM "{api.url}/xxe/evil.dtd"><r>&leak;</r>',
        f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "{api.url}/xxe/evil.dtd"> %p;]><r>&leak;</r>',
    ]
    for doc in documents:
        started = time.perf_counter()
        r = c.post(f"{api.url}/xml-to-json/x", content=doc.encode(), headers={"Content-Type": "application/xml"})
        assert time.perf_counter() - started < 0.5
        assert r.status_code == 500, doc
        assert r.json()["node"]["name"] == "X2J"
        assert "root:" not in r.text and "LEAKED" not in r.text
    assert api.requests_for("/xxe/evil.dtd") == fetched == []


def test_malformed_xml_and_non_json_are_node_errors(c, api):
    r = c.post(f"{api.url}/xml-to-json/x", content=b"<a><b></a>", headers={"Content-Type": "text/xml"})
    assert r.status_code == 500 and r.json()["node"]["name"] == "X2J"
    r = c.post(f"{api.url}/json-to-xml/x", content=b"not json", headers={"Content-Type": "text/plain"})
    assert r.status_code == 500 and r.json()["node"]["name"] == "J2X"
