"""XML <-> JSON conversion for the `xml_to_json` and `json_to_xml` nodes.

Both directions use the same conventions, so that a document converted one
way and back gives the original (key order aside, see "Round trips" below).

XML -> JSON (`xml_to_json`)
===========================

* The document becomes an object with one key, the root element's name:
  `<root><a>1</a></root>` -> `{"root": {"a": 1}}`.
* Names are kept as written, namespace prefixes included (`soap:Envelope`);
  namespace declarations are ordinary attributes (`xmlns:soap`).
* An element with neither attributes nor child elements becomes its text,
  unless `text_as_property` is set: then it becomes `{text_block_name: text}`.
  An empty element (`<a/>`, `<a></a>`, whitespace only) becomes `{}` (Kong:
  "Empty XML tags or elements are converted into empty JSON objects").
* Any other element becomes an object: its attributes, then its text under
  `text_block_name` (when there is any), then its child elements by name.
  Child elements with the same name become a list, in document order, even
  when other elements stand between them. A key met twice for any other
  reason (an attribute and a child element with the same key) also becomes a
  list.
* Attributes go into an object under `attributes_block_name` when it is set
  (names prefixed with `attributes_name_prefix` if that is set too), else into
  keys `attributes_name_prefix + name`, else (neither set) into plain keys.
* Text: the element's character data (text, CDATA, text between child
  elements) is joined and stripped of surrounding whitespace; whitespace-only
  text counts as no text. Comments and processing instructions are dropped.
* The text `null` becomes `null`. With `recognize_type` (the default), the
  texts `true` and `false` become booleans and a text written as a JSON number
  (`-12`, `3.5`, `1e3`; not `01`, `+1`, `.5`, `0x10` or `NaN`) becomes a
  number. This applies to text and attribute values alike.
* `xpath` selects elements to convert instead of the whole document; the
  result is an object keyed by the names of the selected elements (several
  with the same name: a list), like the children of an element. The
  supported XPath subset is ElementTree's (see `XPATH_HELP`).

JSON -> XML (`json_to_xml`)
===========================

* An object with a single key that is a valid element name and whose value
  is not a list is the root element itself. Anything else (several keys, a
  list, a scalar, an attribute key) is the content of a `root_element_name`
  element: `{"a": 1, "b": 2}` -> `<root><a>1</a><b>2</b></root>`.
* In an object, the `attributes_block_name` key (an object) gives the
  attributes (a prefix is removed from its keys when they carry it); then the
  `text_block_name` key is the text; then keys starting with
  `attributes_name_prefix` are attributes (prefix removed); every other key
  is a child element. Attributes are written first, then the text, then the
  children in key order. A list gives one element per item; an item that is
  itself a list gives an element whose children are `<item>` elements, as
  does a list at the top.
* Scalars are written as JSON writes them: `true`, `false`, `null`, numbers,
  strings as they are. An empty object, empty string or empty list gives an
  empty element (Kong: "Empty string, empty array, and empty object values
  are converted into empty XML elements"); an empty list as a child gives one
  empty element.
* No XML declaration is written. Names that are not valid XML names and
  characters XML 1.0 cannot carry (most control characters) are errors.

Round trips
===========

XML -> JSON -> XML gives an equivalent document when attributes are marked
(`attributes_block_name` and/or `attributes_name_prefix` set), except that
sibling elements are regrouped by name, text moves before child elements,
surrounding whitespace of text is dropped and numbers are written in canonical
form (`1.50` comes back as `1.5`). JSON -> XML -> JSON gives the original
value when strings are not empty and do not look like numbers, booleans or
`null`, and lists have at least two items and do not directly contain lists
(`""` and `[]` come back as `{}`, the empty element's value).

Safety
======

Parsing is done by expat through `defusedxml` with document type declarations
forbidden: any `<!DOCTYPE ...>` is rejected before its internal subset is
read, so entity-expansion bombs ("billion laughs") and external entities
(XXE, DTD fetching) fail at once, without expanding or fetching anything.
Nesting deeper than `MAX_DEPTH` is rejected in both directions.
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any
from xml.etree import ElementPath
from xml.sax import SAXParseException
from xml.sax.handler import ContentHandler
from xml.sax.saxutils import escape

from defusedxml import DefusedXmlException
from defusedxml.expatreader import DefusedExpatParser

from .codecs import json_type
from .errors import NodeError

__all__ = [
    "MAX_DEPTH",
    "MAX_RECONVERTED",
    "XPATH_HELP",
    "check_name",
    "check_xpath",
    "json_to_xml",
    "xml_to_json",
]

MAX_DEPTH = 256
"""Deepest element nesting accepted (libxml2's default limit)."""

MAX_RECONVERTED = 100_000
"""How many element conversions an `xpath` may add to the document's own
(selected elements inside other selected ones are converted again)."""

XPATH_HELP = (
    "supported XPath subset (ElementTree): absolute (/a/b) and relative "
    "(a/b) location paths from the document, // descendants, * (also p:*), "
    ". and .., and predicates [@attr], [@attr='v'], [@attr!='v'], [child], "
    "[child='text'], [.='text'], [N], [last()], [last()-N]; names with "
    "prefixes as written in the document (soap:Body). Not supported: "
    "functions other than last(), axes (child::), unions (|), text() and "
    "selecting attributes (a/@b)"
)

# XML 1.0 Name production (with ':' allowed, as names are kept qualified).
_NAME_START = (
    ":A-Z_a-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u02ff\u0370-\u037d"
    "\u037f-\u1fff\u200c-\u200d\u2070-\u218f\u2c00-\u2fef\u3001-\ud7ff"
    "\uf900-\ufdcf\ufdf0-\ufffd\U00010000-\U000effff"
)
_NAME_CHAR = _NAME_START + r"\-.0-9\u00b7\u0300-\u036f\u203f-\u2040"
_NAME_RE = re.compile(f"[{_NAME_START}][{_NAME_CHAR}]*")
# Characters XML 1.0 cannot carry, not even as character references.
_INVALID_CHAR_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# A JSON number, as RFC 8259 writes it.
_NUMBER_RE = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_ATTR_ESCAPES = {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}
_TEXT_ESCAPES = {"\r": "&#13;"}
_ITEM = "item"  # element name for an item of a list directly inside a list
_XML_SPACE = " \t\r\n"  # what XML counts as white space (not NBSP &c.)


# -- shared helpers ----------------------------------------------------------


def check_name(name: str) -> bool:
    """Whether `name` is a valid XML element or attribute name."""
    return isinstance(name, str) and _NAME_RE.fullmatch(name) is not None


def _recognize(text: str, recognize_type: bool) -> Any:
    if text == "null":
        return None
    if not recognize_type:
        return text
    if text == "true":
        return True
    if text == "false":
        return False
    if _NUMBER_RE.fullmatch(text):
        try:
            value = json.loads(text)
        except ValueError:  # more digits than Python converts: keep the text
            return text
        if isinstance(value, float) and not math.isfinite(value):
            return text  # 1e999: not representable in JSON
        return value
    return text


def _add(obj: dict[str, Any], key: str, value: Any) -> None:
    """Set `key`, turning a repeated key into a list of its values.

    Converted elements are never lists themselves, so a list value can only
    come from an earlier repetition.
    """
    if key not in obj:
        obj[key] = value
    elif isinstance(obj[key], list):
        obj[key].append(value)
    else:
        obj[key] = [obj[key], value]


# Tags and attribute names are stored in the tree as `{prefix}local` so that
# ElementTree's XPath resolves `prefix:local` in paths through a prefix map
# that maps every prefix to itself.
def _to_clark(qname: str) -> str:
    prefix, sep, local = qname.partition(":")
    if sep and prefix and local:
        return f"{{{prefix}}}{local}"
    return qname


def _from_clark(name: str) -> str:
    if name[:1] == "{":
        prefix, _, local = name[1:].partition("}")
        return f"{prefix}:{local}"
    return name


class _PrefixesAsThemselves(dict[str, str]):
    """Prefix map for ElementPath: `p:x` means `{p}x`, for every prefix."""

    def __init__(self) -> None:
        # A non-empty mapping, so ElementPath uses it (and caches separately).
        super().__init__({"\x00mitmdatakit": ""})

    def __missing__(self, prefix: str) -> str:
        return prefix


_PREFIXES = _PrefixesAsThemselves()
_QUOTED_RE = re.compile(r"'[^']*'|\"[^\"]*\"")


# -- XML -> JSON -----------------------------------------------------------


class _TreeHandler(ContentHandler):
    """SAX handler building an ElementTree with qualified names kept."""

    def __init__(self) -> None:
        super().__init__()
        self.builder = ET.TreeBuilder()
        self.depth = 0

    def startElement(self, name: str, attrs: Any) -> None:  # SAX API name
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise NodeError(f"XML elements are nested deeper than {MAX_DEPTH} levels")
        self.builder.start(_to_clark(name), {_to_clark(k): v for k, v in attrs.items()})

    def endElement(self, name: str) -> None:  # SAX API name
        self.depth -= 1
        self.builder.end(_to_clark(name))

    def characters(self, content: str) -> None:
        self.builder.data(content)

    def ignorableWhitespace(self, whitespace: str) -> None:  # SAX API name
        self.builder.data(whitespace)


def parse_xml(text: str) -> ET.Element:
    """Parse an XML document safely (no DTD, no entities, bounded depth)."""
    if not isinstance(text, str):
        raise NodeError(f"XML input must be a string, not {json_type(text)}")
    # A byte-order mark or whitespace before the XML declaration is tolerated.
    text = text.lstrip("\ufeff \t\r\n")
    handler = _TreeHandler()
    parser = DefusedExpatParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    parser.setContentHandler(handler)
    try:
        parser.feed(text)
        parser.close()
    except DefusedXmlException as exc:
        raise NodeError(
            "XML document rejected: document type declarations (<!DOCTYPE ...>), "
            "and with them entity declarations and external entities, are not "
            f"allowed ({type(exc).__name__})"
        ) from None
    except SAXParseException as exc:
        raise NodeError(
            f"invalid XML: {exc.getMessage()} "
            f"(line {exc.getLineNumber()}, column {exc.getColumnNumber()})"
        ) from None
    return handler.builder.close()


def check_xpath(xpath: str) -> None:
    """Raise NodeError when `xpath` is outside the supported subset."""
    _select(ET.Element("\x00"), xpath)


def _select(root: ET.Element, xpath: str) -> list[ET.Element]:
    unquoted = _QUOTED_RE.sub("", xpath)
    for token, what in (("|", "unions (|)"), ("::", "axes (::)")):
        if token in unquoted:  # ElementPath would read these as names, silently
            raise NodeError(f"unsupported xpath {xpath!r}: {what} are not supported; {XPATH_HELP}")
    document = ET.Element("")  # stands for the document node, parent of the root
    document.append(root)
    path = "." + xpath if xpath.startswith("/") else xpath
    try:
        steps = _compile_xpath(path)
    except (SyntaxError, KeyError, TypeError, ValueError, IndexError) as exc:
        reason = exc.msg if isinstance(exc, SyntaxError) else "an expression outside the supported subset"
        raise NodeError(f"invalid or unsupported xpath {xpath!r}: {reason}; {XPATH_HELP}") from None
    context = ElementPath._SelectorContext(document)
    found: list[ET.Element] = [document]
    for op, select in steps:
        if op == "//":
            found = _outermost(found)
        found = list(dict.fromkeys(select(context, found)))
    # Selecting the document node (`/`, `.`) means the whole document.
    return [root if element is document else element for element in found]


# ElementPath evaluates a path step by step over every element the previous
# step gave, duplicates included: `//a//b` on nested `a`s scans each `b` once
# per `a` above it, and each further `//` multiplies again (`//*//*//c` on a
# 1 MB body took 114 s). Its `[N]`/`[last()]` lists the siblings again for
# each element (20,000 siblings: 5 s). Its steps are run here instead, with
# duplicates dropped after each step, contexts inside another dropped before
# a `//` (their descendants are the outer one's too), and positions counted
# once per parent, so each step is linear in the document.
type _Select = Callable[[Any, Iterable[ET.Element]], Iterable[ET.Element]]


def _compile_xpath(path: str) -> list[tuple[str, _Select]]:
    """ElementPath's compiler (as in `ElementPath.iterfind`), keeping each
    step's operator; index predicates get a linear step."""
    if path[-1:] == "/":
        path += "*"
    tokens = ElementPath.xpath_tokenizer(path, _PREFIXES)
    consumed: list[tuple[str, str]] = []

    def next_token() -> tuple[str, str]:
        token = next(tokens)
        consumed.append(token)
        return token

    steps: list[tuple[str, _Select]] = []
    try:
        token = next_token()
    except StopIteration:
        return steps
    while True:
        consumed.clear()
        try:
            select: _Select | None = ElementPath.ops[token[0]](next_token, token)
        except StopIteration:
            raise SyntaxError("invalid path") from None
        if select is None:  # the path ended inside the step (`a[`, `a//`)
            raise SyntaxError("invalid path")
        if token[0] == "[":
            position = _position(consumed)
            if position is not None:
                select = _select_position(position)
        steps.append((token[0], select))
        try:
            token = next_token()
            if token[0] == "/":
                token = next_token()
        except StopIteration:
            return steps


def _position(predicate: list[tuple[str, str]]) -> int | None:
    """The list index `[N]`, `[last()]` or `[last()-N]` selects (ElementPath
    validated it already); None for other predicates."""
    tokens = [token for token in predicate if token != ("", "") and token[0] != "]"]
    signature = "".join(op or "-" for op, _ in tokens)
    if signature == "-" and re.fullmatch(r"-?\d+", tokens[0][1]):
        return int(tokens[0][1]) - 1
    if signature == "-()":
        return -1
    if signature == "-()-":
        return int(tokens[2][1]) - 1
    return None


def _select_position(position: int) -> _Select:
    def select(context: Any, result: Iterable[ET.Element]) -> Iterator[ET.Element]:
        parents = ElementPath.get_parent_map(context)
        same_tag: dict[tuple[int, str], list[ET.Element]] = {}
        for element in result:
            parent = parents.get(element)
            if parent is None:
                continue
            key = (id(parent), element.tag)
            if key not in same_tag:
                same_tag[key] = [child for child in parent if child.tag == element.tag]
            siblings = same_tag[key]
            if -len(siblings) <= position < len(siblings) and siblings[position] is element:
                yield element

    return select


def _outermost(elements: list[ET.Element]) -> list[ET.Element]:
    """`elements` without those inside another one of them."""
    inside: set[int] = set()
    kept = []
    for element in elements:
        if id(element) in inside:
            continue
        kept.append(element)
        inside.update(id(descendant) for descendant in element.iter())
    return kept


def xml_to_json(
    text: str,
    *,
    attributes_block_name: str | None = None,
    attributes_name_prefix: str | None = None,
    text_block_name: str = "#text",
    text_as_property: bool = False,
    recognize_type: bool = True,
    xpath: str | None = None,
) -> Any:
    """Convert an XML document to a JSON value (see the module docstring)."""
    root = parse_xml(text)
    prefix = attributes_name_prefix or ""
    # Selections inside each other (`//a` on nested `a`s) convert the inner
    # ones again; that is bounded, or 250 nested `a`s would convert a body
    # 250 times over (gigabytes).
    budget = sum(1 for _ in root.iter()) + MAX_RECONVERTED if xpath is not None else -1

    def convert(element: ET.Element) -> Any:
        nonlocal budget
        if budget == 0:
            raise NodeError(
                f"xpath {xpath!r} selects elements inside each other that would convert more than "
                f"{MAX_RECONVERTED} elements more than once"
            )
        budget -= 1
        attrib = element.attrib
        children = list(element)
        pieces = [element.text or ""]
        pieces.extend(child.tail or "" for child in children)
        content = "".join(pieces).strip(_XML_SPACE)
        if not attrib and not children and not text_as_property:
            # Kong: "Empty XML tags or elements are converted into empty JSON objects."
            return _recognize(content, recognize_type) if content else {}
        obj: dict[str, Any] = {}
        if attrib:
            attributes = {
                prefix + _from_clark(name): _recognize(value, recognize_type)
                for name, value in attrib.items()
            }
            if attributes_block_name:
                obj[attributes_block_name] = attributes
            else:
                for key, value in attributes.items():
                    _add(obj, key, value)
        if content:
            _add(obj, text_block_name, _recognize(content, recognize_type))
        for child in children:
            _add(obj, _from_clark(child.tag), convert(child))
        return obj

    elements = [root] if xpath is None else _select(root, xpath)
    if not elements:
        raise NodeError(f"xpath {xpath!r} selected no element")
    result: dict[str, Any] = {}
    for element in elements:
        _add(result, _from_clark(element.tag), convert(element))
    return result


# -- JSON -> XML -----------------------------------------------------------


def _scalar_text(value: Any, where: Callable[[], str]) -> str:
    """`value` as element or attribute text; `where` names it in errors
    (called only then: building the path for every value is quadratic)."""
    if value is None:
        text = "null"
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise NodeError(f"{where()}: {value!r} is not a JSON number")
        text = repr(value)
    elif isinstance(value, str):
        text = value
    else:
        raise NodeError(f"{where()}: a {json_type(value)} cannot be written as text")
    bad = _INVALID_CHAR_RE.search(text)
    if bad:
        raise NodeError(
            f"{where()}: character U+{ord(bad.group()):04X} cannot be represented in XML 1.0"
        )
    return text


def json_to_xml(
    value: Any,
    *,
    root_element_name: str = "root",
    attributes_block_name: str | None = None,
    attributes_name_prefix: str | None = None,
    text_block_name: str = "#text",
) -> str:
    """Convert a JSON value to an XML document string (see the module docstring)."""
    prefix = attributes_name_prefix or ""
    out: list[str] = []
    # The path of the element being written, for error messages: joined only
    # when one is raised (a path string per element costs depth x size).
    trail: list[str] = []

    def path() -> str:
        return "".join(trail)

    def path_to(key: str) -> Callable[[], str]:
        return lambda: f"{path()}.{key}"

    def is_attribute_key(key: str) -> bool:
        return bool(prefix) and key.startswith(prefix) and len(key) > len(prefix)

    def attribute(name: str, val: Any, attrs: dict[str, str]) -> None:
        if not check_name(name):
            raise NodeError(f"{path()}: {name!r} is not a valid XML attribute name")
        if name in attrs:
            raise NodeError(f"{path()}: attribute {name!r} is given twice")
        if isinstance(val, (Mapping, list, tuple)):
            raise NodeError(f"{path()}: attribute {name!r} must be a scalar, not {json_type(val)}")
        attrs[name] = _scalar_text(val, lambda: f"{path()}, attribute {name!r}")

    def element(name: str, val: Any, depth: int, step: str) -> None:
        trail.append(step)
        if depth > MAX_DEPTH:
            raise NodeError(f"JSON value is nested deeper than {MAX_DEPTH} levels")
        if not check_name(name):
            raise NodeError(f"{path()}: key {name!r} is not a valid XML element name")
        attrs: dict[str, str] = {}
        text = ""
        children: list[tuple[str, Any, bool]] = []  # name, value, expand a list
        if isinstance(val, Mapping):
            for key, item in val.items():
                if not isinstance(key, str):
                    raise NodeError(f"{path()}: object keys must be strings, not {key!r}")
                if attributes_block_name is not None and key == attributes_block_name:
                    if not isinstance(item, Mapping):
                        raise NodeError(
                            f"{path()}: {key!r} (the attributes block) must be an object, "
                            f"not {json_type(item)}"
                        )
                    for attr_key, attr_val in item.items():
                        name_ = attr_key[len(prefix) :] if is_attribute_key(attr_key) else attr_key
                        attribute(name_, attr_val, attrs)
                elif key == text_block_name:
                    if isinstance(item, (Mapping, list, tuple)):
                        raise NodeError(
                            f"{path()}: {key!r} (the text block) must be a scalar, "
                            f"not {json_type(item)}"
                        )
                    text += _scalar_text(item, path_to(key))
                elif is_attribute_key(key):
                    attribute(key[len(prefix) :], item, attrs)
                else:
                    children.append((key, item, True))
        elif isinstance(val, (list, tuple)):
            children.extend((_ITEM, item, False) for item in val)
        else:
            text = _scalar_text(val, path)

        out.append("<" + name)
        for attr_name, attr_val in attrs.items():
            out.append(f' {attr_name}="{escape(attr_val, _ATTR_ESCAPES)}"')
        if not text and not children:
            out.append("/>")
            trail.pop()
            return
        out.append(">")
        out.append(escape(text, _TEXT_ESCAPES))
        for child_name, child_val, expand in children:
            if expand and isinstance(child_val, (list, tuple)) and child_val:  # [] below: empty element
                for index, item in enumerate(child_val):
                    element(child_name, item, depth + 1, f".{child_name}[{index}]")
            else:
                element(child_name, child_val, depth + 1, f".{child_name}")
        out.append(f"</{name}>")
        trail.pop()

    if (
        isinstance(value, Mapping)
        and len(value) == 1
        and not isinstance(next(iter(value.values())), (list, tuple))
    ):
        (key,) = value.keys()
        own_key = (
            isinstance(key, str)
            and key != text_block_name
            and key != attributes_block_name
            and not is_attribute_key(key)
            and check_name(key)
        )
        if own_key:
            element(key, value[key], 1, key)
            return "".join(out)
    if not check_name(root_element_name):
        raise NodeError(f"root_element_name {root_element_name!r} is not a valid XML name")
    element(root_element_name, value, 1, root_element_name)
    return "".join(out)
