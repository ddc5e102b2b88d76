"""PubMed's inline markup (``<i>``, ``<sup>``, MathML …) as safe HTML.

The parser keeps a title's or abstract's markup as an XML fragment (``Study.title_markup``).
It is never passed through as a string: this module parses it and builds the HTML again from
an allow-list of elements and attributes, escaping every text node. Anything else (an element
not on the list, a ``<script>`` smuggled into a record) is reduced to its text.
"""

from __future__ import annotations

from html import escape

from lxml import etree
from markupsafe import Markup

MATHML_NS = "http://www.w3.org/1998/Math/MathML"
INLINE = {"i": "i", "b": "b", "u": "u", "sup": "sup", "sub": "sub", "em": "em", "strong": "strong"}
MATHML = frozenset({
    "math", "mi", "mn", "mo", "ms", "mtext", "mspace", "mrow", "mfrac", "msqrt", "mroot", "mstyle",
    "merror", "mpadded", "mphantom", "mfenced", "menclose", "msub", "msup", "msubsup", "munder",
    "mover", "munderover", "mmultiscripts", "mprescripts", "none", "mtable", "mtr", "mtd", "semantics",
})
MATHML_ATTRIBUTES = frozenset({"display", "mathvariant", "open", "close", "separators", "notation", "stretchy",
                               "fence", "separator", "lspace", "rspace", "linethickness", "accent"})
_PARSER = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False, recover=False)


def safe_html(fragment: str | None, fallback: str = "") -> Markup:
    """The markup fragment as HTML built from the allow-list; ``fallback`` (escaped) if the
    fragment is empty or not well-formed."""
    if not fragment:
        return Markup(escape(fallback))
    try:
        root = etree.fromstring(f'<root xmlns:mml="{MATHML_NS}">{fragment}</root>'.encode(), _PARSER)
    except etree.XMLSyntaxError:
        return Markup(escape(fallback or _text_of(fragment)))
    out: list[str] = []
    _emit_children(root, out)
    return Markup("".join(out))


def _text_of(fragment: str) -> str:
    try:
        return "".join(etree.fromstring(f"<r>{fragment}</r>".encode(), _PARSER).itertext())
    except etree.XMLSyntaxError:
        return fragment


def _emit_children(elem: etree._Element, out: list[str]) -> None:
    if elem.text:
        out.append(escape(elem.text, quote=False))
    for child in elem:
        _emit(child, out)
        if child.tail:
            out.append(escape(child.tail, quote=False))


def _emit(elem: etree._Element, out: list[str]) -> None:
    if not isinstance(elem.tag, str):  # comments, processing instructions
        return
    qname = etree.QName(elem)
    name = qname.localname
    if qname.namespace == MATHML_NS and name in MATHML:
        attrs = "".join(
            f' {k}="{escape(v)}"' for k, v in sorted(elem.attrib.items())
            if isinstance(k, str) and "}" not in k and k in MATHML_ATTRIBUTES
        )
        if name == "math":
            attrs = f' xmlns="{MATHML_NS}"' + attrs
        out.append(f"<{name}{attrs}>")
        _emit_children(elem, out)
        out.append(f"</{name}>")
    elif qname.namespace is None and name in INLINE:
        out.append(f"<{INLINE[name]}>")
        _emit_children(elem, out)
        out.append(f"</{INLINE[name]}>")
    else:
        _emit_children(elem, out)
