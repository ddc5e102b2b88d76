"""Answers: NCBI's XML and JSON bodies, their heads and error messages, word for word."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

from kb.testing.eutils.query import _Search, _TermSet
from kb.testing.eutils.records import MAX_UID

_XML_DECL = '<?xml version="1.0" encoding="UTF-8" ?>\n'
_ESEARCH_HEAD = (
    _XML_DECL + '<!DOCTYPE eSearchResult PUBLIC "-//NLM//DTD esearch 20060628//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20060628/esearch.dtd">\n'
)
_EPOST_HEAD = (
    _XML_DECL + '<!DOCTYPE ePostResult PUBLIC "-//NLM//DTD epost 20090526//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20090526/epost.dtd">'
)
_EFETCH_ERROR_HEAD = (
    _XML_DECL + '<!DOCTYPE eEfetchResult PUBLIC "-//NLM//DTD efetch 20131226//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20131226/efetch.dtd">\n'
)
_ESUMMARY_V1_HEAD = (
    _XML_DECL + '<!DOCTYPE eSummaryResult PUBLIC "-//NLM//DTD esummary v1 20041029//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20041029/esummary-v1.dtd">\n'
)
_ESUMMARY_V2_HEAD = (
    _XML_DECL + '<!DOCTYPE eSummaryResult PUBLIC "-//NLM//DTD esummary pubmed 20160808//EN" '
    '"https://eutils.ncbi.nlm.nih.gov/eutils/dtd/20160808/esummary_pubmed.dtd">\n'
)
_PUBMED_HEAD = (
    b'<?xml version="1.0" ?>\n<!DOCTYPE PubmedArticleSet PUBLIC "-//NLM//DTD PubMedArticle, '
    b'1st January 2025//EN" "https://dtd.nlm.nih.gov/ncbi/pubmed/out/pubmed_250101.dtd">\n'
    b"<PubmedArticleSet>"
)
_PUBMED_FOOT = b"</PubmedArticleSet>"

_XML_TYPE = "text/xml; charset=UTF-8"
_JSON_TYPE = "application/json; charset=UTF-8"
_HTML_TYPE = "text/html; charset=UTF-8"

_MSG_ID_EMPTY = "Supplied id parameter is empty."
_MSG_NO_CORRECT_IDS = "ID list is empty! Possibly it has no correct IDs."
_MSG_EMPTY_TERM = "Empty term and query_key - nothing todo"
_MSG_NO_ID_NOR_KEY = "Neither query_key nor id specified"
_MSG_EPOST_EMPTY = "Empty ID list; Nothing to store"
_MSG_EPOST_INVALID = f"Some IDs have invalid value and were omitted. Maximum ID value {MAX_UID}"
_MSG_BACKEND = (
    "Search Backend failed: Couldn't resolve #PMQuerySrv_2_0?dbaf=pubmed, the address table is empty."
)


def _esc(text: object) -> str:
    return html.escape(str(text), quote=False)


@dataclass(slots=True)
class _Answer:
    """An HTTP answer whose body is kept as parts (record XML is never copied into one string)."""

    status: int
    content_type: str
    parts: list[bytes]
    headers: dict[str, str] = field(default_factory=dict)
    ids_served: int = 0

    @property
    def length(self) -> int:
        return sum(len(p) for p in self.parts)


def _xml(text: str, status: int = 200) -> _Answer:
    return _Answer(status, _XML_TYPE, [text.encode("utf-8")])


def _json(payload: object, status: int = 200) -> _Answer:
    return _Answer(status, _JSON_TYPE, [json.dumps(payload, separators=(",", ":")).encode("utf-8")])


def _error_xml(endpoint: str, message: str, status: int = 200) -> _Answer:
    """An E-utility's ``<ERROR>`` body in that utility's result element, as NCBI words it."""
    error = f"<ERROR>{_esc(message)}</ERROR>"
    if endpoint == "esearch":
        return _xml(f"{_ESEARCH_HEAD}<eSearchResult>{error}</eSearchResult>\n", status)
    if endpoint == "epost":
        return _xml(f"{_EPOST_HEAD}\n<ePostResult>\n\t{error}\n</ePostResult>\n", status)
    if endpoint == "esummary":
        return _xml(f"{_ESUMMARY_V1_HEAD}<eSummaryResult>\n\t{error}\n</eSummaryResult>\n", status)
    return _xml(f"{_EFETCH_ERROR_HEAD}<eFetchResult>\n\t{error}\n</eFetchResult>", status)


_JSON_HEADER = {"type": "esearch", "version": "0.3"}
_MISSING_SUMMARY_V1 = "<ERROR>UID={uid}: cannot get document summary</ERROR>\n"
_MISSING_SUMMARY_V2 = (
    '<DocumentSummary uid="{uid}">\n\t<error>cannot get document summary</error>\n</DocumentSummary>\n'
)


def _retstart_message(cap: int) -> str:
    return (
        f"Search Backend failed: Exception:\n'retstart' cannot be larger than {cap - 1}. For PubMed, "
        f"ESearch can only retrieve the first {cap:,} records matching the query. To obtain more "
        f"than {cap:,} PubMed records, consider using EDirect that contains additional logic to batch "
        "PubMed search results automatically so that an arbitrary number can be retrieved. For details "
        "see https://www.ncbi.nlm.nih.gov/books/NBK25499/"
    )


def _esearch_error(message: str, as_json: bool, status: int = 200) -> _Answer:
    if as_json:
        return _json({"header": _JSON_HEADER, "esearchresult": {"ERROR": message}}, status)
    return _error_xml("esearch", message, status)


@dataclass(frozen=True, slots=True)
class _EsearchPage:
    """What an esearch answer reports, in either format."""

    count: int
    page: list[int]
    retstart: int
    history: tuple[str, int] | None  # (WebEnv, query_key) with usehistory=y
    translation: str
    search: _Search
    messages: list[str]


def _esearch_xml(result: _EsearchPage, stack: list[_TermSet | str] | None) -> _Answer:
    """NCBI's esearch XML, down to where it puts (and does not put) whitespace."""
    count, page, retstart, history = result.count, result.page, result.retstart, result.history
    translation, search, messages = result.translation, result.search, result.messages
    parts = [f"<Count>{count}</Count><RetMax>{len(page)}</RetMax><RetStart>{retstart}</RetStart>"]
    if history is not None:
        parts.append(f"<QueryKey>{history[1]}</QueryKey><WebEnv>{history[0]}</WebEnv>")
    ids = "".join(f"<Id>{p}</Id>\n" for p in page)
    parts.append(f"<IdList>\n{ids}</IdList>" if page else "<IdList/>")
    translations = "".join(
        f"<Translation>     <From>{_esc(low)}</From>     <To>{_esc(high)}</To>    </Translation>"
        for low, high in search.translations
    )
    parts.append(f"<TranslationSet>{translations}</TranslationSet>" if translations else "<TranslationSet/>")
    if stack is not None:
        items = "".join(
            f"   <OP>{item}</OP>"
            if isinstance(item, str)
            else f"   <TermSet>    <Term>{_esc(item.term)}</Term>    <Field>{_esc(item.field)}</Field>"
            f"    <Count>{item.count}</Count>    <Explode>{item.explode}</Explode>   </TermSet>"
            for item in stack
        )
        parts.append(f"<TranslationStack>{items}  </TranslationStack>")
    parts.append(f"<QueryTranslation>{_esc(translation)}</QueryTranslation>")
    errors = [f"<PhraseNotFound>{_esc(p)}</PhraseNotFound>" for p in search.phrases_not_found]
    errors += [f"<FieldNotFound>{_esc(f)}</FieldNotFound>" for f in search.fields_not_found]
    if errors:
        parts.append(f"<ErrorList>{''.join(errors)}</ErrorList>")
    warnings = [
        f"<QuotedPhraseNotFound>{_esc(p)}</QuotedPhraseNotFound>" for p in search.quoted_not_found
    ]
    warnings += [f"<OutputMessage>{_esc(m)}</OutputMessage>" for m in messages]
    if warnings:
        parts.append(f"<WarningList>{''.join(warnings)}</WarningList>")
    return _xml(f"{_ESEARCH_HEAD}<eSearchResult>{''.join(parts)}</eSearchResult>\n")


def _esearch_json(result: _EsearchPage) -> _Answer:
    count, page, retstart, history = result.count, result.page, result.retstart, result.history
    translation, search, messages = result.translation, result.search, result.messages
    result: dict[str, Any] = {"count": str(count), "retmax": str(len(page)), "retstart": str(retstart)}
    if history is not None:
        result.update({"querykey": str(history[1]), "webenv": history[0]})
    result["idlist"] = [str(p) for p in page]
    result["translationset"] = [{"from": low, "to": high} for low, high in search.translations]
    result["querytranslation"] = translation
    if search.phrases_not_found or search.fields_not_found:
        result["errorlist"] = {
            "phrasesnotfound": search.phrases_not_found,
            "fieldsnotfound": search.fields_not_found,
        }
    if search.quoted_not_found or messages:
        result["warninglist"] = {
            "phrasesignored": [],
            "quotedphrasesnotfound": search.quoted_not_found,
            "outputmessages": messages,
        }
    return _json({"header": _JSON_HEADER, "esearchresult": result})
