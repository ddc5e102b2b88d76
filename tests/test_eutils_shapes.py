"""The stand-in's answers have the shape of NCBI's real ones in ../shared/corpus/eutils.

For each kind of answer the stand-in serves (esearch plain, with history, paged, with a
TranslationSet and TranslationStack, with no hits; epost and its error bodies; esummary v1) the
test asks the stand-in the equivalent question over loopback and compares the two answers:

* the prolog: XML declaration, DOCTYPE (public id and URL) and root element, exactly;
* what ``Bio.Entrez.read`` makes of them: the nested keys in order, dict / list / string types,
  the tags and ``.attributes`` Biopython exposes (for an answer with a non-empty ``<ERROR>``,
  that ``read`` raises the same way, then what ``read(ignore_errors=True)`` returns);
* the raw XML as lxml reads it: element names, order, attributes and which leaves carry text.

Values are never compared: runs of siblings of the same shape (the Ids of an IdList) count once.
The real answers are read from ../shared at test time, never copied into the repository.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from Bio import Entrez
from lxml import etree

from kb.testing.eutils import EutilsServer

from .conftest import SHARED, skip_or_fail

pytestmark = pytest.mark.network

REAL = SHARED / "corpus" / "eutils"
RECORDS = SHARED / "corpus" / "pubmed" / "ncbiutils" / "multiple.xml"  # 100 real records with MeSH
DTDS = Path(Entrez.__file__).parent / "DTDs"

# esummary Items named by data (an IdType, a PubStatus), not by NCBI's format.
DATA_KEYED = frozenset({"ArticleIds", "History"})
_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)

Shape = tuple[Any, ...]


# --------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------


def _runs(shapes: list[Shape]) -> list[Shape]:
    """Consecutive equal shapes count once: 20 Ids and 3 Ids are the same IdList."""
    return [s for i, s in enumerate(shapes) if i == 0 or s != shapes[i - 1]]


def entrez_shape(value: Any, key: str | None = None) -> Shape:
    """What Bio.Entrez.read returned, without the values."""
    tag = getattr(value, "tag", None)
    attributes = tuple(sorted(getattr(value, "attributes", {}) or {}))
    kind = type(value).__name__
    if isinstance(value, dict):
        if key in DATA_KEYED:
            values = sorted({entrez_shape(v) for v in value.values()}, key=repr)
            return (kind, tag, attributes, "keyed by data", tuple(values))
        return (kind, tag, attributes, tuple((k, entrez_shape(v, k)) for k, v in value.items()))
    if isinstance(value, list):
        return (kind, tag, attributes, tuple(_runs([entrez_shape(v) for v in value])))
    return (kind, tag, attributes)


def xml_shape(elem: etree._Element) -> Shape:
    """Element names, order, attribute names (and esummary's Item Type), text or not."""
    attributes = tuple(sorted(elem.attrib))
    item_type = elem.get("Type")
    children = [xml_shape(child) for child in elem]
    has_text = bool((elem.text or "").strip()) if not children else None
    return (elem.tag, attributes, item_type, has_text, tuple(_runs(children)))


@dataclass
class Answer:
    """One E-utilities answer and everything the comparison looks at."""

    body: bytes
    prolog: tuple[str, str, str, str]
    read_error: str | None  # what Bio.Entrez.read raised, if it did
    entrez: Shape
    xml: Shape

    @classmethod
    def of(cls, body: bytes) -> Answer:
        tree = etree.parse(io.BytesIO(body), _PARSER)
        info = tree.docinfo
        prolog = (info.xml_version or "", info.encoding or "", info.doctype, info.root_name or "")
        try:
            parsed, read_error = Entrez.read(io.BytesIO(body)), None
        except RuntimeError as exc:  # a non-empty <ERROR>
            parsed = Entrez.read(io.BytesIO(body), ignore_errors=True)
            read_error = type(exc).__name__
        return cls(body, prolog, read_error, entrez_shape(parsed), xml_shape(tree.getroot()))


def differences(real: Answer, standin: Answer) -> list[str]:
    found = []
    if real.prolog != standin.prolog:
        found.append(f"prolog: NCBI {real.prolog} != stand-in {standin.prolog}")
    if real.read_error != standin.read_error:
        found.append(f"Entrez.read raises: NCBI {real.read_error} != stand-in {standin.read_error}")
    if real.entrez != standin.entrez:
        found.append(f"Entrez.read shape:\n  NCBI     {real.entrez}\n  stand-in {standin.entrez}")
    if real.xml != standin.xml:
        found.append(f"XML shape:\n  NCBI     {real.xml}\n  stand-in {standin.xml}")
    return found


# --------------------------------------------------------------------------------------------
# The stand-in, and the questions that get the real answers
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_dir() -> Path:
    if not REAL.is_dir() or not RECORDS.is_file():
        skip_or_fail(f"NCBI's saved answers ({REAL}) or the records ({RECORDS}) are not in ../shared")
    return REAL


@pytest.fixture(scope="module")
def standin(real_dir: Path) -> Iterator[EutilsServer]:
    with EutilsServer([RECORDS], rate=None) as server:
        yield server


def ask(
    server: EutilsServer, utility: str, params: dict[str, str], *, post: bool = False
) -> tuple[int, bytes]:
    """(status, body) of a GET, or a form-encoded POST as Bio.Entrez sends epost."""
    query = urllib.parse.urlencode(params)
    url = f"{server.base_url}{utility}.fcgi"
    request = urllib.request.Request(url if post else f"{url}?{query}", query.encode() if post else None)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


WINDOW = {"mindate": "1900", "maxdate": "2030"}

# (real file, utility, parameters, POST?, TranslationStack on?) - each the stand-in's equivalent of
# the question NCBI answered (PROVENANCE.md says what each real answer is).
CASES = {
    # "biopython": hits, no term mapped, 20 of them.
    "esearch-plain": ("esearch1.xml", "esearch", {"term": "interleukin"}, False, False),
    # usehistory=y and a date window; "cancer" was mapped to MeSH, as "cytokines" is here.
    "esearch-history": (
        "esearch2.xml",
        "esearch",
        {"term": "cytokines", "usehistory": "y", "retmax": "100", "datetype": "edat", **WINDOW},
        False,
        False,
    ),
    "esearch-paged": (
        "esearch3.xml",
        "esearch",
        {"term": "humans", "retstart": "6", "retmax": "6"},
        False,
        False,
    ),
    # "stem cells AND hasabstract" (PMC's esearch, which still sends a TranslationStack).
    "esearch-translation-stack": (
        "esearch5.xml",
        "esearch",
        {"term": "gene expression AND interleukin"},
        False,
        True,
    ),
    "esearch-no-hits": ("esearch8.xml", "esearch", {"term": "abcXYZ"}, False, False),
    "epost": ("epost1.xml", "epost", {"id": "1309841,1330001"}, True, False),
    "epost-invalid-db": ("epost2.xml", "epost", {"db": "nothing", "id": "1309841"}, True, False),
    "epost-invalid-ids": ("epost3.xml", "epost", {"id": "99999999999999999999999999999999"}, True, False),
    # two records without a DOI, like NCBI's two
    "esummary-v1": ("esummary1.xml", "esummary", {"id": "1309841,1330001"}, False, False),
}


def standin_answer(server: EutilsServer, case: str) -> tuple[int, bytes]:
    _, utility, params, post, stack = CASES[case]
    server.translation_stack = stack
    try:
        return ask(server, utility, {"db": "pubmed", **params}, post=post)
    finally:
        server.translation_stack = False


@pytest.mark.parametrize("case", list(CASES))
def test_the_standin_answers_in_ncbis_shape(standin: EutilsServer, real_dir: Path, case: str) -> None:
    real = Answer.of((real_dir / CASES[case][0]).read_bytes())
    status, body = standin_answer(standin, case)
    assert status == 200, body  # NCBI sends each of these, error bodies included, as a 200
    assert differences(real, Answer.of(body)) == []


def test_the_questions_are_the_ones_meant(standin: EutilsServer, real_dir: Path) -> None:
    """The stand-in's answers above have the features their real counterparts are chosen for."""
    answers = {
        case: Entrez.read(io.BytesIO(standin_answer(standin, case)[1]), ignore_errors=True) for case in CASES
    }
    assert int(answers["esearch-plain"]["Count"]) > 20 and len(answers["esearch-plain"]["IdList"]) == 20
    assert answers["esearch-plain"]["TranslationSet"] == []
    assert answers["esearch-history"]["TranslationSet"][0]["From"] == "cytokines"
    assert answers["esearch-history"]["QueryKey"] == "1"
    assert (answers["esearch-paged"]["RetStart"], answers["esearch-paged"]["RetMax"]) == ("6", "6")
    stack = answers["esearch-translation-stack"]["TranslationStack"]
    assert [s if isinstance(s, str) else s["Term"] for s in stack] == [
        '"gene expression"[MeSH Terms]',
        '"gene"[All Fields]',
        '"expression"[All Fields]',
        "AND",
        "GROUP",
        "OR",
        '"gene expression"[All Fields]',
        "OR",
        "GROUP",
        "interleukin[All Fields]",
        "AND",
    ]
    assert [d["Id"] for d in answers["esummary-v1"]] == ["1309841", "1330001"]
    assert all("DOI" not in d for d in answers["esummary-v1"])


@pytest.mark.parametrize("case", ["epost-invalid-db", "epost-invalid-ids"])
def test_epost_error_bodies_are_ncbis_to_the_byte(standin: EutilsServer, real_dir: Path, case: str) -> None:
    """These answers hold no values that vary (no WebEnv, no count): the bytes must match."""
    assert standin_answer(standin, case)[1] == (real_dir / CASES[case][0]).read_bytes()


def test_the_comparison_catches_what_differs(real_dir: Path) -> None:
    """Each kind of difference the stand-in once had, or could have, is caught."""
    real = {name: (real_dir / name).read_bytes() for name in ("esearch2.xml", "esearch5.xml", "epost1.xml")}
    mutations = {
        "an empty TranslationSet": (
            "esearch2.xml",
            lambda b: b.split(b"<TranslationSet>")[0]
            + b"<TranslationSet/><QueryTranslation>x</QueryTranslation></eSearchResult>",
        ),
        "no TranslationStack": (
            "esearch5.xml",
            lambda b: b.split(b"<TranslationStack>")[0]
            + b"<QueryTranslation>x</QueryTranslation></eSearchResult>",
        ),
        "QueryKey after WebEnv": (
            "esearch2.xml",
            lambda b: b.replace(b"<QueryKey>1</QueryKey>", b"").replace(
                b"</WebEnv>", b"</WebEnv><QueryKey>1</QueryKey>"
            ),
        ),
        "an operator before its terms": (
            "esearch5.xml",
            lambda b: b.replace(b"   <OP>AND</OP>  </TranslationStack>", b"  </TranslationStack>").replace(
                b"<TranslationStack>", b"<TranslationStack>   <OP>AND</OP>"
            ),
        ),
        "another DOCTYPE": ("epost1.xml", lambda b: b.replace(b"DTD epost 20090526", b"DTD epost 20090527")),
        "an InvalidIdList": (
            "epost1.xml",
            lambda b: b.replace(b"<ePostResult>", b"<ePostResult><InvalidIdList><Id>x</Id></InvalidIdList>"),
        ),
        "an ERROR added": (
            "epost1.xml",
            lambda b: b.replace(b"</ePostResult>", b"<ERROR>bad</ERROR></ePostResult>"),
        ),
    }
    for what, (name, mutate) in mutations.items():
        changed = mutate(real[name])
        assert changed != real[name], what
        assert differences(Answer.of(real[name]), Answer.of(changed)) != [], f"not caught: {what}"
    # and values alone are not differences
    fewer_ids = real["esearch2.xml"].replace(b"<Id>41297076</Id>\n", b"").replace(b"42249", b"7")
    assert differences(Answer.of(real["esearch2.xml"]), Answer.of(fewer_ids)) == []


# --------------------------------------------------------------------------------------------
# Answers with no real counterpart in ../shared: held to the DTDs NCBI names in them
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("utility", "params", "dtd"),
    [
        ("esearch", {"term": ""}, "esearch.dtd"),  # <ERROR>Empty term and query_key - nothing todo
        ("esearch", {"term": "humans", "rettype": "count"}, "esearch.dtd"),
        ("esearch", {"term": "humans[xyz] AND abcXYZ"}, "esearch.dtd"),  # FieldNotFound, PhraseNotFound
        ("esearch", {"term": '"abc xyz"[tiab] OR humans'}, "esearch.dtd"),  # QuotedPhraseNotFound
        ("epost", {"id": "1309841,abc"}, "epost.dtd"),  # stored, and an ERROR for the invalid id
        ("esummary", {}, "esummary-v1.dtd"),  # <ERROR>Neither query_key nor id specified
        ("esummary", {"id": "42"}, "esummary-v1.dtd"),  # <ERROR>UID=42: cannot get document summary
    ],
)
def test_other_answers_are_valid_by_ncbis_dtds(
    standin: EutilsServer, utility: str, params: dict[str, str], dtd: str
) -> None:
    status, body = ask(standin, utility, {"db": "pubmed", **params}, post=utility == "epost")
    assert status == 200, body
    checker = etree.DTD(str(DTDS / dtd))
    root = etree.fromstring(body, _PARSER)
    assert checker.validate(root), checker.error_log.filter_from_errors()


def test_ncbis_answers_are_valid_by_the_same_dtds(real_dir: Path) -> None:
    """The DTD check above can fail: NCBI's own answers pass it, and NCBI's epost3.xml does not."""
    valid = {
        "esearch1.xml": "esearch.dtd",
        "esearch5.xml": "esearch.dtd",
        "esearch8.xml": "esearch.dtd",
        "epost1.xml": "epost.dtd",
        "epost2.xml": "epost.dtd",
        "esummary1.xml": "esummary-v1.dtd",
    }
    for name, dtd in valid.items():
        assert etree.DTD(str(DTDS / dtd)).validate(etree.parse(str(real_dir / name), _PARSER)), name
    assert not etree.DTD(str(DTDS / "epost.dtd")).validate(etree.parse(str(real_dir / "epost3.xml"), _PARSER))
