"""xml_to_json / json_to_xml: conversions, node attributes, safety, round trips."""

from __future__ import annotations

import json
import re
import sys
import time
import tracemalloc
import xml.parsers.expat
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mitmdatakit import xmljson
from mitmdatakit.errors import ConfigError, NodeError
from mitmdatakit.nodes import base
from mitmdatakit.nodes.base import NodeSpec, WorkflowInfo
from mitmdatakit.nodes.json_to_xml import JsonToXmlNode
from mitmdatakit.nodes.xml_to_json import XmlToJsonNode
from mitmdatakit.ports import SELF, PortType

x2j = xmljson.xml_to_json
j2x = xmljson.json_to_xml

WORKFLOW = WorkflowInfo(name="t", source="t.yaml", resources={}, raw_resources={}, upstreams={})


def make(node_type: str, **attrs):
    spec = NodeSpec(name="X", type=node_type, index=0, attrs=attrs)
    cls = {"xml_to_json": XmlToJsonNode, "json_to_xml": JsonToXmlNode}[node_type]
    return cls(spec, WORKFLOW)


def run(node, value):
    return node.run({SELF: value}, None)[SELF]


# -- an independent XML normalizer (plain expat, no namespace processing) ------


def canon(text: str):
    """(tag, attrs, text, children) with text joined and stripped and
    children regrouped by name in order of first appearance: what the
    conversion promises to keep."""
    parser = xml.parsers.expat.ParserCreate()
    stack: list[list] = [["", {}, [], []]]

    def start(tag, attrs):
        stack.append([tag, dict(attrs), [], []])

    def end(tag):
        node = stack.pop()
        stack[-1][3].append(node)

    def data(chunk):
        stack[-1][2].append(chunk)

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = data
    parser.Parse(text, True)

    def freeze(node):
        tag, attrs, pieces, children = node
        order: dict[str, int] = {}
        for child in children:
            order.setdefault(child[0], len(order))
        children = sorted(children, key=lambda c: order[c[0]])  # stable
        return (tag, attrs, "".join(pieces).strip(" \t\r\n"), [freeze(c) for c in children])

    (root,) = stack[0][3]
    return freeze(root)


# -- the spec example, both ways ------------------------------------------------


def test_spec_example_xml_to_json():
    assert x2j("<root><a>1</a></root>") == {"root": {"a": 1}}


def test_spec_example_json_to_xml():
    assert j2x({"root": {"a": 1}}) == "<root><a>1</a></root>"


def test_spec_example_through_nodes():
    assert run(make("xml_to_json", attributes_name_prefix="-"), "<root><a>1</a></root>") == {"root": {"a": 1}}
    assert run(make("json_to_xml"), {"root": {"a": 1}}) == "<root><a>1</a></root>"


# -- xml_to_json ---------------------------------------------------------------


def test_repeated_elements_become_lists_in_document_order():
    doc = "<r><b>1</b><c>x</c><b>2</b><b>3</b></r>"
    assert x2j(doc) == {"r": {"b": [1, 2, 3], "c": "x"}}


def test_single_element_is_not_a_list():
    assert x2j("<r><b>1</b></r>") == {"r": {"b": 1}}


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", 1),
        ("-12", -12),
        ("0", 0),
        ("3.5", 3.5),
        ("-0.25", -0.25),
        ("1e3", 1000.0),
        ("2E-2", 0.02),
        ("123456789012345678901234567890", 123456789012345678901234567890),
        ("true", True),
        ("false", False),
        ("null", None),
        # not JSON numbers or booleans: kept as text
        ("01", "01"),
        ("+1", "+1"),
        (".5", ".5"),
        ("1.", "1."),
        ("0x10", "0x10"),
        ("NaN", "NaN"),
        ("Infinity", "Infinity"),
        ("1e999", "1e999"),
        ("True", "True"),
        ("1 2", "1 2"),
        ("", {}),  # Kong: an empty element is an empty object
    ],
)
def test_recognize_type(text, value):
    result = x2j(f"<a>{text}</a>")["a"]
    assert result == value
    assert type(result) is type(value)


def test_recognize_type_applies_to_attributes():
    doc = '<a n="5" f="2.5" b="true" z="null" s="05"/>'
    assert x2j(doc, attributes_name_prefix="@") == {
        "a": {"@n": 5, "@f": 2.5, "@b": True, "@z": None, "@s": "05"}
    }


def test_recognize_type_false_keeps_strings_but_null_is_null():
    doc = '<r k="7"><n>1</n><b>true</b><z>null</z></r>'
    assert x2j(doc, recognize_type=False, attributes_name_prefix="-") == {
        "r": {"-k": "7", "n": "1", "b": "true", "z": None}
    }


def test_huge_integer_text_stays_text():
    digits = "9" * 5000  # more digits than Python converts to int
    assert x2j(f"<a>{digits}</a>") == {"a": digits}


def test_kong_example_prefix_dash_without_block():
    # convert-xml-into-json.yaml: attributes_block_name null, prefix "-".
    node = make(
        "xml_to_json",
        attributes_name_prefix="-",
        recognize_type=True,
        text_block_name="#text",
    )
    doc = '<book id="12" lang="en"><title lang="fr">Le Petit Prince</title><year>1943</year></book>'
    assert run(node, doc) == {
        "book": {
            "-id": 12,
            "-lang": "en",
            "title": {"-lang": "fr", "#text": "Le Petit Prince"},
            "year": 1943,
        }
    }


def test_kong_example_attributes_block():
    # convert-json-to-xml-and-back.yaml: attributes_block_name "#attr".
    node = make("xml_to_json", attributes_block_name="#attr")
    doc = '<book id="12"><title lang="fr">Le Petit Prince</title></book>'
    assert run(node, doc) == {
        "book": {
            "#attr": {"id": 12},
            "title": {"#attr": {"lang": "fr"}, "#text": "Le Petit Prince"},
        }
    }


def test_kong_example_json_to_xml_and_back_with_attributes_block():
    body = {
        "order": {"#attr": {"id": 7}, "item": [{"#attr": {"sku": "A-1"}, "#text": "pen"}, "ink"]}
    }
    xml_text = run(make("json_to_xml", attributes_block_name="#attr"), body)
    assert xml_text == '<order id="7"><item sku="A-1">pen</item><item>ink</item></order>'
    assert run(make("xml_to_json", attributes_block_name="#attr"), xml_text) == body


def test_kong_example_json_into_xml_with_prefix():
    node = make("json_to_xml", attributes_name_prefix="-", text_block_name="#text")
    body = {"user": {"-id": 1, "name": "Ada", "#text": "hello"}}
    assert run(node, body) == '<user id="1">hello<name>Ada</name></user>'


def test_block_and_prefix_together():
    doc = '<a x="1"><b/></a>'
    expected = {"a": {"#attr": {"@x": 1}, "b": {}}}
    assert x2j(doc, attributes_block_name="#attr", attributes_name_prefix="@") == expected
    assert (
        j2x(expected, attributes_block_name="#attr", attributes_name_prefix="@")
        == '<a x="1"><b/></a>'
    )


def test_no_attribute_marking_gives_plain_keys_and_collisions_become_lists():
    assert x2j('<a x="1" y="2"><y>3</y></a>') == {"a": {"x": 1, "y": [2, 3]}}


def test_custom_text_block_name_and_mixed_content():
    doc = '<p class="c">Hello <b>you</b> there</p>'
    assert x2j(doc, attributes_name_prefix="-", text_block_name="$t") == {
        "p": {"-class": "c", "$t": "Hello  there", "b": "you"}
    }


def test_text_next_to_children_goes_under_text_block():
    assert x2j("<a>note<b>1</b></a>") == {"a": {"#text": "note", "b": 1}}


def test_text_as_property():
    doc = '<r><a>1</a><b x="y">t</b><c/><d><e>2</e></d></r>'
    assert x2j(doc, text_as_property=True, attributes_name_prefix="-") == {
        "r": {
            "a": {"#text": 1},
            "b": {"-x": "y", "#text": "t"},
            "c": {},
            "d": {"e": {"#text": 2}},
        }
    }
    assert x2j(doc, text_as_property=False, attributes_name_prefix="-") == {
        "r": {"a": 1, "b": {"-x": "y", "#text": "t"}, "c": {}, "d": {"e": 2}}
    }


def test_whitespace_comments_pis_and_cdata():
    doc = """\ufeff
    <?xml version="1.0" encoding="UTF-8"?>
    <!-- a comment -->
    <r>
      <?pi data?>
      <a>  padded  </a>
      <b><![CDATA[<not> & markup]]></b>
      <c>
      </c>
    </r>
    """
    assert x2j(doc) == {"r": {"a": "padded", "b": "<not> & markup", "c": {}}}


def test_entities_and_character_references():
    assert x2j("<a>&lt;&amp;&gt;&quot;&apos;&#x41;&#66;</a>") == {"a": "<&>\"'AB"}


def test_encoding_declaration_is_ignored_for_text_input():
    assert x2j('<?xml version="1.0" encoding="ISO-8859-1"?><a>é</a>') == {"a": "é"}


def test_unicode_names_and_text():
    doc = '<données clé="värde"><名前>日本語 😀</名前><Ωμέγα>π</Ωμέγα></données>'
    assert x2j(doc, attributes_name_prefix="-") == {
        "données": {"-clé": "värde", "名前": "日本語 😀", "Ωμέγα": "π"}
    }
    back = j2x(x2j(doc, attributes_name_prefix="-"), attributes_name_prefix="-")
    assert canon(back) == canon(doc)


def test_namespaces_are_kept_as_written():
    doc = (
        '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/">'
        '<soap:Body><m:Price xmlns:m="urn:x">12.5</m:Price></soap:Body></soap:Envelope>'
    )
    result = x2j(doc, attributes_name_prefix="-")
    assert result == {
        "soap:Envelope": {
            "-xmlns:soap": "http://schemas.xmlsoap.org/soap/envelope/",
            "soap:Body": {"m:Price": {"-xmlns:m": "urn:x", "#text": 12.5}},
        }
    }
    assert j2x(result, attributes_name_prefix="-") == doc


def test_invalid_xml_is_a_clear_error():
    with pytest.raises(NodeError, match=r"invalid XML: mismatched tag \(line 1, column 8\)"):
        x2j("<a><b></a>")
    with pytest.raises(NodeError, match="invalid XML: no element found"):
        x2j("")
    with pytest.raises(NodeError, match="invalid XML"):
        x2j("just text")
    with pytest.raises(NodeError, match="invalid XML: junk after document element"):
        x2j("<a/><b/>")
    with pytest.raises(NodeError, match="invalid XML: undefined entity"):
        x2j("<a>&nbsp;</a>")


@pytest.mark.parametrize("value", [None, 12, {"a": 1}, ["<a/>"], b"<a/>"])
def test_node_rejects_non_string_input(value):
    with pytest.raises(NodeError, match="xml_to_json input must be an XML string"):
        run(make("xml_to_json", attributes_name_prefix="-"), value)


def test_too_deep_xml_is_rejected():
    depth = xmljson.MAX_DEPTH + 1
    with pytest.raises(NodeError, match="nested deeper than"):
        x2j("<a>" * depth + "</a>" * depth)
    ok = xmljson.MAX_DEPTH
    value = x2j("<a>" * ok + "x" + "</a>" * ok)
    for _ in range(ok - 1):
        value = value["a"]
    assert value == {"a": "x"}


# -- xpath ---------------------------------------------------------------------

CATALOG = """
<catalog xmlns:x="urn:x">
  <book id="1" lang="en"><title>A</title><price>10</price></book>
  <book id="2" lang="fr"><title>B</title><price>12.5</price></book>
  <magazine id="3"><title>C</title></magazine>
  <x:extra>e</x:extra>
</catalog>
"""


@pytest.mark.parametrize(
    ("xpath", "expected"),
    [
        ("/catalog/book/title", {"title": ["A", "B"]}),
        ("//title", {"title": ["A", "B", "C"]}),
        ("catalog/magazine", {"magazine": {"-id": 3, "title": "C"}}),
        (
            "/catalog/book[@lang='fr']",
            {"book": {"-id": 2, "-lang": "fr", "title": "B", "price": 12.5}},
        ),
        ("/catalog/book[2]/price", {"price": 12.5}),
        ("/catalog/book[last()]/title", {"title": "B"}),
        ("//book[title='A']/price", {"price": 10}),
        ("/catalog/*[@id='3']/title", {"title": "C"}),
        ("//title/..", None),  # checked below: parents of titles
        ("/catalog/x:extra", {"x:extra": "e"}),
        ("/catalog/x:*", {"x:extra": "e"}),
        ("/", None),  # the whole document
    ],
)
def test_xpath_selects_sub_trees(xpath, expected):
    result = x2j(CATALOG, attributes_name_prefix="-", xpath=xpath)
    if xpath == "//title/..":
        assert list(result) == ["book", "magazine"]
        assert [b["-id"] for b in result["book"]] == [1, 2]
    elif xpath == "/":
        assert result == x2j(CATALOG, attributes_name_prefix="-")
    else:
        assert result == expected


def test_xpath_mixed_names_are_keyed_by_name():
    result = x2j(CATALOG, xpath="/catalog/*[@id]", attributes_name_prefix="-")
    assert list(result) == ["book", "magazine"]
    assert len(result["book"]) == 2


def test_xpath_through_node():
    node = make("xml_to_json", xpath="//price", attributes_name_prefix="-")
    assert run(node, CATALOG) == {"price": [10, 12.5]}


def test_xpath_without_match_is_a_node_error():
    with pytest.raises(NodeError, match="selected no element"):
        x2j(CATALOG, xpath="/catalog/nothing")


NESTED = "<a>" * 200 + "<b/>" * 20_000 + "</a>" * 200  # 140 KB
SIBLINGS = "<r>" + "<b/>" * 20_000 + "</r>"  # 80 KB


@pytest.mark.parametrize(
    ("doc", "xpath", "found"),
    [
        (NESTED, "//a//b", 20_000),  # each b once, not once per a above it
        (NESTED, "//*//*//c", 0),  # was minutes: each // multiplied the scans
        (NESTED, "//a//a//b[@x]", 0),
        (SIBLINGS, "//b[1]", 1),  # was 5 s: the siblings listed again per b
        (SIBLINGS, "/r/b[last()]", 1),
        (SIBLINGS, "/r/b[last()-1]", 1),
    ],
)
def test_xpath_time_is_linear_in_the_document(doc, xpath, found):
    started = time.process_time()
    try:
        result = x2j(doc, attributes_name_prefix="-", xpath=xpath)
    except NodeError as exc:
        assert found == 0 and "selected no element" in str(exc)
    else:
        assert len(result["b"]) == found if found > 1 else result == {"b": {}}
    assert time.process_time() - started < 1.0


def test_xpath_results_are_those_of_elementtree_without_duplicates():
    doc = "<a><b><a><b>1</b><c/><b>2</b></a></b><b>3</b></a>"
    for xpath in ("//a//b", "//b", "//a//b[1]", "//a/b[last()]", "//*//b/..", "//b[2]"):
        document = xmljson.ET.Element("")
        root = xmljson.parse_xml(doc)
        document.append(root)
        expected = list(dict.fromkeys(document.findall("." + xpath, xmljson._PREFIXES)))
        assert xmljson._select(root, xpath) == expected, xpath


def test_nested_selections_are_bounded():
    # //a selects all 200 nested a's, each with the 20,000 b's below: 4 million conversions
    with pytest.raises(NodeError, match="inside each other"):
        x2j(NESTED, attributes_name_prefix="-", xpath="//a")
    # a few nested selections still work
    assert x2j("<a><a><a/></a></a>", attributes_name_prefix="-", xpath="//a") == {"a": [{"a": {"a": {}}}, {"a": {}}, {}]}


@pytest.mark.parametrize(
    "xpath",
    [
        "/catalog/book/@id",
        "//title/text()",
        "count(//book)",
        "/a | /b",
        "//book[@id=1]",
        "child::a",
        "/a[",
    ],
)
def test_unsupported_or_invalid_xpath_is_a_config_error(xpath):
    with pytest.raises(ConfigError) as info:
        make("xml_to_json", xpath=xpath, attributes_name_prefix="-")
    assert info.value.field == "xpath"
    assert "xpath" in str(info.value)
    with pytest.raises(NodeError):
        x2j(CATALOG, xpath=xpath)


# -- json_to_xml ---------------------------------------------------------------


def test_single_key_object_is_the_root():
    assert j2x({"a": {"b": 1, "c": "x"}}) == "<a><b>1</b><c>x</c></a>"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"a": 1, "b": 2}, "<root><a>1</a><b>2</b></root>"),
        ({"a": [1, 2]}, "<root><a>1</a><a>2</a></root>"),
        ([1, "x"], "<root><item>1</item><item>x</item></root>"),
        ({"a": [[1, 2], 3]}, "<root><a><item>1</item><item>2</item></a><a>3</a></root>"),
        ("text", "<root>text</root>"),
        (5, "<root>5</root>"),
        (None, "<root>null</root>"),
        ({}, "<root/>"),
        ([], "<root/>"),
        ({"a": [], "b": 1}, "<root><a/><b>1</b></root>"),
    ],
)
def test_anything_else_is_wrapped_in_root(value, expected):
    assert j2x(value) == expected


def test_root_element_name():
    node = make("json_to_xml", root_element_name="Envelope")
    assert run(node, {"a": 1, "b": 2}) == "<Envelope><a>1</a><b>2</b></Envelope>"
    assert run(node, {"only": 1}) == "<only>1</only>"


def test_single_attribute_key_is_an_attribute_of_the_wrapper():
    assert j2x({"-id": 3}, attributes_name_prefix="-") == '<root id="3"/>'
    assert j2x({"#text": "t"}) == "<root>t</root>"
    assert j2x({"#attr": {"k": "v"}}, attributes_block_name="#attr") == '<root k="v"/>'


def test_scalars_are_written_as_json_writes_them():
    value = {"r": {"t": True, "f": False, "n": None, "i": -3, "x": 2.5, "e": 1e20, "s": "a b"}}
    assert j2x(value) == (
        "<r><t>true</t><f>false</f><n>null</n><i>-3</i><x>2.5</x><e>1e+20</e><s>a b</s></r>"
    )
    assert x2j(j2x(value)) == value


def test_empty_values():
    # Kong: "Empty string, empty array, and empty object values are converted
    # into empty XML elements"; and back, empty elements are empty objects.
    assert j2x({"r": {"a": "", "b": {}, "c": []}}) == "<r><a/><b/><c/></r>"
    assert x2j("<r><a/><b></b><c> </c></r>") == {"r": {"a": {}, "b": {}, "c": {}}}


def test_xml_to_json_node_needs_an_attribute_convention():
    with pytest.raises(ConfigError, match="one of attributes_block_name or attributes_name_prefix") as info:
        make("xml_to_json")
    assert info.value.field == "attributes_block_name"
    assert make("xml_to_json", attributes_block_name="#attr").options["attributes_name_prefix"] is None


def test_escaping_and_control_whitespace_round_trip():
    value = {"r": {"-q": "a\"'<&>\n\t\r b", "#text": "x<y & z>\r\ny", "c": "]]>"}}
    text = j2x(value, attributes_name_prefix="-")
    assert x2j(text, attributes_name_prefix="-") == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"r": {"my key": 1}}, "not a valid XML element name"),
        ({"r": {"1abc": 1}}, "not a valid XML element name"),
        ({"r": {"": 1}}, "not a valid XML element name"),
        ({"r": {"-bad name": 1}}, "not a valid XML attribute name"),
        ({"r": {"-a": {"b": 1}}}, "must be a scalar"),
        ({"r": {"-a": [1]}}, "must be a scalar"),
        ({"r": {"#attr": "x"}}, "attributes block"),
        ({"r": {"#text": {"a": 1}}}, "text block"),
        ({"r": "bell\x07"}, "U\\+0007 cannot be represented in XML 1.0"),
        ({"r": {"-a": "nul\x00"}}, "U\\+0000"),
        ({"r": float("nan")}, "not a JSON number"),
        ({"r": {"#attr": {"a": 1}, "-a": 2}}, "attribute 'a' is given twice"),
    ],
)
def test_json_to_xml_errors(value, message):
    with pytest.raises(NodeError, match=message):
        j2x(value, attributes_name_prefix="-", attributes_block_name="#attr")


def test_too_deep_json_is_rejected():
    value: object = 1
    for _ in range(xmljson.MAX_DEPTH + 1):
        value = {"a": value}
    with pytest.raises(NodeError, match="nested deeper than"):
        j2x(value)


def test_json_to_xml_errors_name_the_path():
    value = {"r": {"a": [{"b": 1}, {"c": {"-x": [1]}}]}}
    with pytest.raises(NodeError, match=r"^r\.a\[1\]\.c: attribute 'x' must be a scalar"):
        j2x(value, attributes_name_prefix="-")
    with pytest.raises(NodeError, match=r"^r\.a\[0\]\.b: character U\+0001"):
        j2x({"r": {"a": [{"b": "\x01"}]}})


def test_json_to_xml_time_is_linear_in_long_deep_paths():
    # 200 keys of 10,000 characters, then 50,000 items: a path string per
    # element would copy 2 MB 50,000 times (seconds; 112 s for a 9 MB body)
    value: object = {"x": ["1"] * 50_000}
    for _ in range(200):
        value = {"n" * 10_000: value}
    started = time.process_time()
    out = j2x(value)
    assert time.process_time() - started < 1.0
    assert out.count("<x>1</x>") == 50_000


def test_json_to_xml_node_decodes_string_input():
    node = make("json_to_xml")
    assert run(node, '{"a": {"b": [1, 2]}}') == "<a><b>1</b><b>2</b></a>"
    with pytest.raises(NodeError, match="not JSON"):
        run(node, "<a/>")
    for text in ("[" * 100_000 + "]" * 100_000, "NaN"):  # not a RecursionError crash
        with pytest.raises(NodeError, match="not JSON"):
            run(node, text)


# -- node definitions ------------------------------------------------------------


def test_nodes_are_registered_with_ports():
    assert base._REGISTRY["xml_to_json"] is XmlToJsonNode
    assert base._REGISTRY["json_to_xml"] is JsonToXmlNode
    x, j = make("xml_to_json", attributes_name_prefix="-"), make("json_to_xml")
    assert x.input_ports().type_of(SELF) is PortType.STRING
    assert x.output_ports().type_of(SELF) is PortType.ANY
    assert j.input_ports().type_of(SELF) is PortType.ANY
    assert j.output_ports().type_of(SELF) is PortType.STRING


def test_schemas_list_kong_attributes():
    assert set(XmlToJsonNode.schema["properties"]) == {
        "attributes_block_name",
        "attributes_name_prefix",
        "text_block_name",
        "text_as_property",
        "recognize_type",
        "xpath",
    }
    assert set(JsonToXmlNode.schema["properties"]) == {
        "root_element_name",
        "attributes_block_name",
        "attributes_name_prefix",
        "text_block_name",
    }
    assert JsonToXmlNode.schema["properties"]["root_element_name"]["maxLength"] == 64
    assert XmlToJsonNode.schema["properties"]["xpath"]["maxLength"] == 256
    assert XmlToJsonNode.schema["properties"]["text_block_name"]["maxLength"] == 32


def test_defaults():
    node = make("xml_to_json", attributes_name_prefix="-")
    assert node.options == {
        "attributes_block_name": None,
        "attributes_name_prefix": "-",
        "text_block_name": "#text",
        "text_as_property": False,
        "recognize_type": True,
        "xpath": None,
    }
    assert make("json_to_xml").options["root_element_name"] == "root"


@pytest.mark.parametrize("node_type", ["xml_to_json", "json_to_xml"])
def test_block_and_text_names_must_differ(node_type):
    with pytest.raises(ConfigError) as info:
        make(node_type, attributes_block_name="#text")
    assert info.value.field == "attributes_block_name"
    assert info.value.node == "X"


@pytest.mark.parametrize("name", ["1root", "has space", "a<b", "-x"])
def test_invalid_root_element_name_is_a_config_error(name):
    with pytest.raises(ConfigError) as info:
        make("json_to_xml", root_element_name=name)
    assert info.value.field == "root_element_name"


# -- safety ----------------------------------------------------------------------

_opened: list[str] = []
_connected: list[object] = []
_watching: list[str] = []


def _audit(event, args):
    if not _watching:
        return
    if event == "open" and args and isinstance(args[0], (str, bytes, Path)):
        path = str(args[0])
        if any(w in path for w in _watching):
            _opened.append(path)
    elif event in ("socket.connect", "urllib.Request"):
        _connected.append(args)


sys.addaudithook(_audit)

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
<lolz a="&lol9;">&lol9;</lolz>"""

QUADRATIC_BLOWUP = (
    '<!DOCTYPE r [<!ENTITY a "' + "x" * 50_000 + '">]><r>' + "&a;" * 50_000 + "</r>"
)


def assert_rejected_fast_and_flat(doc: str, **options):
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(NodeError, match="DOCTYPE") as info:
            run(make("xml_to_json", **{"attributes_name_prefix": "-", **options}), doc)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert elapsed < 0.25, elapsed
    assert peak < 2 * len(doc) + 2_000_000, peak
    assert "lol" not in str(info.value)
    return info.value


@pytest.mark.parametrize("recognize_type", [True, False])
def test_billion_laughs_is_rejected_fast_with_flat_memory(recognize_type):
    error = assert_rejected_fast_and_flat(BILLION_LAUGHS, recognize_type=recognize_type)
    assert "not allowed" in str(error)


def test_quadratic_blowup_is_rejected():
    assert_rejected_fast_and_flat(QUADRATIC_BLOWUP)


@pytest.fixture
def secret(tmp_path):
    path = tmp_path / "xxe-secret.txt"
    path.write_text("TOP-SECRET-CONTENT")
    _opened.clear()
    _connected.clear()
    _watching.append(str(tmp_path))
    yield path
    _watching.clear()


def xxe_documents(path: Path) -> list[str]:
    uri = path.as_uri()
    return [
        f'<!DOCTYPE r [<!ENTITY xxe SYSTEM "{uri}">]><r>&xxe;</r>',
        f'<!DOCTYPE r [<!ENTITY xxe SYSTEM "{uri}">]><r a="&xxe;"/>',
        f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{uri}"> %p;]><r/>',
        f'<!DOCTYPE r SYSTEM "{uri}"><r/>',
        '<!DOCTYPE r SYSTEM "http://127.0.0.1:9/evil.dtd"><r/>',
        '<!DOCTYPE r [<!ENTITY xxe SYSTEM "http://127.0.0.1:9/x">]><r>&xxe;</r>',
        f'<!DOCTYPE r PUBLIC "-//X//Y" "{uri}"><r/>',
    ]


def test_external_entities_are_rejected_without_reading_files(secret):
    # The audit hook does see opens of the watched directory:
    secret.read_text()
    assert _opened, "audit hook not working"
    _opened.clear()
    for doc in xxe_documents(secret):
        started = time.perf_counter()
        with pytest.raises(NodeError, match="DOCTYPE") as info:
            run(make("xml_to_json", attributes_name_prefix="-"), doc)
        assert time.perf_counter() - started < 0.25
        assert "TOP-SECRET" not in str(info.value)
    assert _opened == []
    assert _connected == []


def test_external_entities_rejected_with_every_option(secret):
    doc = xxe_documents(secret)[0]
    for options in (
        {"xpath": "//r"},
        {"text_as_property": True},
        {"attributes_block_name": "#attr", "recognize_type": False},
    ):
        with pytest.raises(NodeError, match="DOCTYPE"):
            x2j(doc, **options)
    assert _opened == []


def test_harmless_doctype_is_rejected_too():
    with pytest.raises(NodeError, match="DOCTYPE"):
        x2j("<!DOCTYPE html><html/>")


# -- round trips (hypothesis) ----------------------------------------------------

_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_LETTERS = "abcxyzABZ_éßΩ中ж"
_NAME_CHARS = _LETTERS + "0189-."

names = st.builds(
    lambda prefix, first, rest: prefix + first + rest,
    st.sampled_from(["", "", "", "ns:", "s-1:"]),
    st.sampled_from(_LETTERS),
    st.text(alphabet=_NAME_CHARS, max_size=5),
)
xml_chars = st.characters(
    codec="utf-8",
    exclude_categories=("Cs", "Cc"),
    exclude_characters="\ufffe\uffff",
) | st.sampled_from(list("\t\n<>&\"' ]"))


def _plain_text(s: str) -> bool:
    """A string that converts back to itself: no surrounding whitespace and
    not readable as a number, boolean or null."""
    return (
        s == s.strip(" \t\r\n")
        and s not in ("true", "false", "null")
        and not _JSON_NUMBER.fullmatch(s)
    )


plain_text = (
    st.text(alphabet=xml_chars, max_size=8).map(lambda s: s.strip(" \t\r\n")).filter(_plain_text)
)
canonical_numbers = st.integers().map(str) | st.floats(
    allow_nan=False, allow_infinity=False
).map(repr)
xml_texts = plain_text | canonical_numbers | st.sampled_from(["true", "false", "null", ""])
attr_texts = xml_texts  # (no "\r" in generated text: ET-style escaping is tested separately)


def _escape(text: str, attr: bool = False) -> str:
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if attr:
        text = text.replace('"', "&quot;").replace("\n", "&#10;").replace("\t", "&#9;")
    return text


@st.composite
def xml_elements(draw, depth=0):
    tag = draw(names)
    attrs = draw(st.dictionaries(names, attr_texts, max_size=3))
    text = draw(xml_texts)
    children = draw(st.lists(xml_elements(depth + 1), max_size=0 if depth >= 3 else 3))
    tail_text = draw(st.sampled_from(["", "", " ", "\n  "]))
    head = "<" + tag + "".join(f' {k}="{_escape(v, True)}"' for k, v in attrs.items())
    body = _escape(text) + "".join(child + tail_text for child in children)
    return f"{head}>{body}</{tag}>" if body else head + "/>"


OPTION_SETS = [
    {"attributes_name_prefix": "-"},
    {"attributes_block_name": "#attr"},
    {"attributes_block_name": "#attr", "attributes_name_prefix": "@"},
    {"attributes_name_prefix": "-", "text_block_name": "$t"},
]

ROUND_TRIP_SETTINGS = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@ROUND_TRIP_SETTINGS
@given(
    doc=xml_elements(),
    options=st.sampled_from(OPTION_SETS),
    text_as_property=st.booleans(),
    recognize_type=st.booleans(),
)
def test_round_trip_xml_json_xml(doc, options, text_as_property, recognize_type):
    value = x2j(doc, text_as_property=text_as_property, recognize_type=recognize_type, **options)
    json.dumps(value, allow_nan=False)  # a JSON value
    back = j2x(value, **options)
    assert canon(back) == canon(doc)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | plain_text
)
text_values = json_scalars.filter(lambda v: v != "")


@st.composite
def json_elements(draw, options, depth=0):
    """A JSON value that json_to_xml -> xml_to_json gives back unchanged."""
    if depth >= 3 or draw(st.booleans()):
        return draw(text_values)
    prefix = options.get("attributes_name_prefix") or ""
    block = options.get("attributes_block_name")
    text_key = options.get("text_block_name", "#text")
    child_names = names.filter(lambda n: block is None or n != block)
    children = draw(
        st.dictionaries(
            child_names,
            json_elements(options, depth + 1)
            | st.lists(json_elements(options, depth + 1), min_size=2, max_size=3).filter(
                lambda items: not any(isinstance(i, list) for i in items)
            ),
            max_size=3,
        )
    )
    obj = dict(children)
    attrs = draw(st.dictionaries(names, json_scalars, max_size=2))
    if attrs:
        if block:
            obj[block] = {prefix + k: v for k, v in attrs.items()}
        else:
            obj.update({prefix + k: v for k, v in attrs.items()})
    if obj and draw(st.booleans()):
        obj[text_key] = draw(text_values)
    if not obj:
        return draw(text_values)
    return obj


@st.composite
def json_documents(draw):
    options = draw(st.sampled_from(OPTION_SETS))
    value = {draw(names): draw(json_elements(options))}
    return options, value


@ROUND_TRIP_SETTINGS
@given(json_documents())
def test_round_trip_json_xml_json(case):
    options, value = case
    text = j2x(value, **options)
    assert x2j(text, **options) == value


@settings(max_examples=40, deadline=None)
@given(json_documents())
def test_round_trip_through_nodes_with_json_text_input(case):
    options, value = case
    xml_text = run(make("json_to_xml", **options), json.dumps(value))
    assert run(make("xml_to_json", **options), xml_text) == value
