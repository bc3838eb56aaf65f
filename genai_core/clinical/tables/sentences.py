"""The sentence templates of a synthetic case, per slot and register, and the fields that become answer
spans (data only)."""

from __future__ import annotations

from typing import NamedTuple

from genai_core.clinical.pools import Register

# slot -> register -> templates. Fields in braces are filled from the case; fields named in
# SPAN_FIELDS become answer spans. Pronoun fields: {He} {he} {His} {his} {him}.
TEMPLATES: dict[str, dict[Register, tuple[str, ...]]] = {
    "intro": {
        "narrative": (
            "{A} {age}-year-old {sex} presented with {duration} of {symptoms}.",
            "The patient, {a} {age} year old {sex}, was admitted after {duration} of {symptoms}.",
            "We report {a} {age}-year-old {sex} who presented with {symptoms}.",
            "A {sex} aged {age} attended the emergency department with {symptoms}.",
            "This {age}-year-old {sex} was referred by {his} GP with {duration} of {symptoms}.",
            "{A} {age}-year-old {sex} was brought in by ambulance with {symptoms}.",
            "The case concerns {a} {age}-year-old {sex} with {duration} of {symptoms}.",
            "We describe {a} {age}-year-old {sex} admitted with {symptoms} that had developed over {duration}.",
            "A previously independent {age}-year-old {sex} presented with {symptoms}.",
            "{He} is {a} {age}-year-old {sex} who was admitted with {symptoms}.",
            "{A} {age}-year-old {sex} presented to our hospital with {symptoms} for {duration}.",
            "{A} {age}-year-old {sex} was seen in the emergency department with {symptoms}.",
            "At the age of {age}, this {sex} presented with {symptoms} after {duration} of feeling unwell.",
            "{A} {age}-year-old {sex} was admitted to the medical ward with {symptoms}.",
            "Our patient was {a} {age}-year-old {sex} who developed {symptoms} over {duration}.",
            "{A} {age}-year-old {sex} was referred to the acute medical unit with {symptoms}.",
            "{A} {age}-year-old {sex} called an ambulance after {duration} of {symptoms}.",
            "This report describes {a} {age}-year-old {sex} admitted with {symptoms}.",
        ),
        "terse": (
            "{age}{sexl}, PC: {symptoms} x {duration}.",
            "{age} y/o {sex}, c/o {symptoms} for {duration}.",
            "Pt {age}{sexl} presenting with {symptoms} ({duration}).",
            "{age}{sexl}. PC {symptoms}.",
            "{age}yo {sex}; {duration} of {symptoms}.",
            "Age {age}, {sex}. Presented: {symptoms}.",
            "{age}{sexl} admitted via ED with {symptoms}.",
            "{sexl}/{age}. c/o {symptoms}, {duration}.",
            "{age} {sex}. HPC: {duration} {symptoms}.",
            "Pt: {age}{sexl}. Sx: {symptoms}.",
            "{age}{sexl} BIBA, {symptoms}.",
        ),
    },
    "history": {
        "narrative": (
            "{His} past medical history included {history}.",
            "{He} had a history of {history}.",
            "Comorbidities were {history}.",
            "{He} was known to have {history}.",
            "Relevant background included {history}.",
            "{His} background was notable for {history}.",
            "Past history: {history}.",
            "Medical history comprised {history}.",
            "{His} medical history was significant for {history}.",
            "Co-morbidities included {history}.",
            "{He} had previously been diagnosed with {history}.",
        ),
        "terse": (
            "PMH: {history}.",
            "Bg: {history}.",
            "Known {history}.",
            "PMHx {history}.",
            "Hx: {history}.",
            "Background - {history}.",
            "Co-morbs: {history}.",
        ),
    },
    "vitals": {
        "narrative": (
            "On arrival {his} oxygen saturation was {spo2} on {o2ctx}, heart rate {hr} bpm, respiratory rate {rr} "
            "breaths/min, blood pressure {bp} mmHg and temperature {temp} C.",
            "{He} was {state}, with SpO2 {spo2} on {o2ctx}, a heart rate of {hr}/min and a respiratory rate of "
            "{rr}/min; blood pressure was {bp} mmHg and temperature {temp} C.",
            "Observations on admission: SpO2 {spo2} on {o2ctx}, HR {hr}, RR {rr}, BP {bp}, temperature {temp} C.",
            "Initial observations showed a temperature of {temp} C, pulse {hr}, respiratory rate {rr}, blood "
            "pressure {bp} and saturations of {spo2} on {o2ctx}.",
            "{He} was {state} on examination; saturations were {spo2} on {o2ctx} with a respiratory rate of {rr}, "
            "heart rate {hr}, blood pressure {bp} mmHg and temperature {temp} C.",
            "Vital signs: SpO2 {spo2} ({o2ctx}), HR {hr} bpm, RR {rr}/min, BP {bp} mmHg, T {temp} C.",
            "At triage {he} had a temperature of {temp} C, heart rate {hr}, respiratory rate {rr}, blood pressure "
            "{bp} mmHg and oxygen saturations of {spo2} on {o2ctx}.",
            "{His} saturations were {spo2} on {o2ctx}; heart rate was {hr} bpm, respiratory rate {rr}/min, blood "
            "pressure {bp} mmHg and temperature {temp} C.",
        ),
        "terse": (
            "Obs: SpO2 {spo2} on {o2ctx}, HR {hr}, RR {rr}, BP {bp}, T {temp}.",
            "O/E: {state}, SpO2 {spo2} {o2ctx}, HR {hr}, RR {rr}, BP {bp}, T {temp}.",
            "SpO2 {spo2} on {o2ctx}. HR {hr}. RR {rr}. BP {bp}. T {temp}.",
            "NEWS obs - T {temp}, HR {hr}, RR {rr}, BP {bp}, sats {spo2} {o2ctx}.",
            "Sats {spo2} {o2ctx}, HR {hr}, BP {bp}, RR {rr}, T {temp}.",
        ),
    },
    "imaging": {
        "narrative": (
            "A {modality} showed {imaging}.",
            "{Modality} demonstrated {imaging}.",
            "Imaging revealed {imaging} on {modality}.",
            "The {modality} showed {imaging}.",
            "{Modality} findings were {imaging}.",
            "Findings on {modality} included {imaging}.",
            "Radiology showed {imaging} on the {modality}.",
            "{Modality} was reported as showing {imaging}.",
        ),
        "terse": (
            "{modality}: {imaging}.",
            "{modality} - {imaging}.",
            "{modality} showed {imaging}.",
            "Imaging: {imaging}.",
            "{modality} = {imaging}.",
        ),
    },
    "labs": {
        "narrative": (
            "Blood tests showed {labs}.",
            "Laboratory results included {labs}.",
            "Initial investigations revealed {labs}.",
            "Bloods were notable for {labs}.",
            "Admission bloods: {labs}.",
            "Results included {labs}.",
            "Notable results were {labs}.",
        ),
        "terse": ("Bloods: {labs}.", "Labs {labs}.", "Bloods - {labs}.", "{labs}.", "Ix: {labs}."),
    },
    "incidental": {
        "narrative": (
            "An incidental {incidental} was noted in the {location}.",
            "Imaging also showed an incidental {incidental} in the {location}.",
            "Of note, a {incidental} was reported in the {location}.",
            "An unrelated {incidental} in the {location} was flagged for follow-up.",
        ),
        "terse": (
            "Incidental {incidental} {location}.",
            "Incidentaloma: {incidental}, {location}.",
            "NB incidental {incidental} in {location}.",
        ),
    },
    "diagnosis": {
        "narrative": (
            "A diagnosis of {diagnosis} was made.",
            "{He} was diagnosed with {diagnosis}.",
            "The working diagnosis was {diagnosis}.",
            "These findings were consistent with {diagnosis}.",
            "The final diagnosis was {diagnosis}.",
            "{He} was treated for {diagnosis}.",
            "The clinical picture was in keeping with {diagnosis}.",
            "A clinical diagnosis of {diagnosis} was reached.",
            "Overall the picture was of {diagnosis}.",
        ),
        "terse": (
            "Dx: {diagnosis}.",
            "Impression: {diagnosis}.",
            "Imp - {diagnosis}.",
            "Working dx {diagnosis}.",
            "Diagnosis: {diagnosis}.",
            "Dx {diagnosis} confirmed.",
        ),
    },
    "treatment": {
        "narrative": (
            "{He} was started on {treatment}.",
            "Treatment was commenced with {treatment}.",
            "{He} received {treatment}.",
            "Management included {treatment}.",
            "{He} was treated with {treatment}.",
            "{treatment} was started on admission.",
            "The team prescribed {treatment}.",
            "Initial therapy consisted of {treatment}.",
            "{He} was commenced on {treatment}.",
            "First-line treatment was {treatment}.",
            "The medical team started {treatment}.",
        ),
        "terse": (
            "Rx: {treatment}.",
            "Commenced {treatment}.",
            "Started {treatment}.",
            "Tx - {treatment}.",
            "Plan: {treatment}.",
            "Given {treatment}.",
            "Meds: {treatment}.",
        ),
    },
    "other_meds": {
        "narrative": (
            "{He} also received {meds}.",
            "Other medications included {meds}.",
            "Additional treatment comprised {meds}.",
            "{meds} {were} also given.",
            "Supportive medication included {meds}.",
            "{He} was additionally given {meds}.",
            "Concurrent therapy included {meds}.",
        ),
        "terse": ("Also: {meds}.", "+ {meds}.", "Other meds: {meds}.", "Adjuncts: {meds}.", "Adj: {meds}."),
    },
    "oxygen": {
        "narrative": (
            "{He} required {oxygen}.",
            "Respiratory support consisted of {oxygen}.",
            "Oxygen therapy was delivered as {oxygen}.",
            "{He} was managed with {oxygen}.",
            "Respiratory support was escalated to {oxygen}.",
            "{He} needed {oxygen} to maintain target saturations.",
            "Respiratory management involved {oxygen}.",
            "{He} was supported with {oxygen}.",
        ),
        "terse": (
            "O2: {oxygen}.",
            "Resp support: {oxygen}.",
            "Escalated to {oxygen}.",
            "Needed {oxygen}.",
            "Resp: {oxygen}.",
            "Vent: {oxygen}.",
        ),
    },
    "oxygen_none": {
        "narrative": (
            "{He} required {oxygen}.",
            "{He} needed {oxygen} throughout.",
            "There was no hypoxia and {he} received {oxygen}.",
        ),
        "terse": ("O2: {oxygen}.", "Resp: {oxygen}."),
    },
    "physio": {
        "narrative": (
            "Physiotherapy included {physio}.",
            "The physiotherapist provided {physio}.",
            "Rehabilitation focused on {physio}.",
            "{He} received physiotherapy comprising {physio}.",
            "Physiotherapy input consisted of {physio}.",
            "The physiotherapy plan included {physio}.",
            "{His} physiotherapy programme comprised {physio}.",
            "Physiotherapy comprised {physio}.",
            "The physiotherapy team delivered {physio}.",
            "{He} was seen daily by physiotherapy for {physio}.",
        ),
        "terse": (
            "Physio: {physio}.",
            "PT: {physio}.",
            "Physio input - {physio}.",
            "Rehab: {physio}.",
            "Physio tx: {physio}.",
            "PT input: {physio}.",
        ),
    },
    "outcome": {
        "narrative": (
            "{He} {outcome}.",
            "Subsequently {he} {outcome}.",
            "Over the following days {he} {outcome}.",
            "With treatment {he} {outcome}.",
            "In terms of outcome, {he} {outcome}.",
            "By the end of the admission {he} {outcome}.",
            "Following this {he} {outcome}.",
        ),
        "terse": (
            "Progress: {outcome}.",
            "Outcome: {outcome}.",
            "Course: {outcome}.",
            "{outcome}.",
            "Prog: {outcome}.",
            "Outcome - {outcome}.",
        ),
    },
    "discharge": {
        "narrative": (
            "{He} was discharged to {discharge} after {los}.",
            "{He} was discharged to {discharge} on {los_day}.",
            "After {los} in hospital, {he} was discharged to {discharge}.",
            "Length of stay was {los}, and {he} was discharged to {discharge}.",
            "{He} left hospital on {los_day} for {discharge}.",
            "Total length of stay was {los}; discharge destination was {discharge}.",
            "Discharge to {discharge} followed on {los_day}.",
            "Discharge was to {discharge} after a stay of {los}.",
            "The total stay was {los}, with discharge to {discharge}.",
        ),
        "terse": (
            "LOS {los}, d/c to {discharge}.",
            "D/c {discharge} on {los_day}.",
            "Discharged to {discharge} ({los}).",
            "LOS {los}. Dest: {discharge}.",
            "D/c dest: {discharge}, LOS {los}.",
            "Dc'd to {discharge}, LOS {los}.",
            "{Los_day}: d/c {discharge}.",
        ),
    },
    "filler": {
        "narrative": (
            "Family history was unremarkable.",
            "{He} lives alone and was independent before admission.",
            "{He} lives with {his} {partner} and was independent with all activities of daily living.",
            "{He} is a retired {job}.",
            "{He} works as {a_job}.",
            "{He} has never smoked.",
            "{He} drinks about {units} units of alcohol per week.",
            "No drug allergies were recorded.",
            "Written consent for publication was obtained.",
            "The case was discussed at the multidisciplinary team meeting.",
            "{His} Clinical Frailty Scale score was {cfs}.",
            "{His} body mass index was {bmi} kg/m2.",
            "There was no recent foreign travel.",
            "{He} mobilised independently without aids at baseline.",
            "{He} used a walking stick outdoors.",
            "{His} regular medications were reviewed on admission.",
            "{He} had been well until the week before admission.",
            "There were no known sick contacts.",
            "{He} is a keen {hobby}.",
            "{He} cares for {his} {partner} at home.",
            "{He} lives in a house with {steps} steps to the front door.",
            "{He} had a package of care {poc} times a day.",
            "{He} had been vaccinated against influenza this season.",
            "There was no history of recent surgery.",
            "Collateral history was obtained from {his} {partner}.",
            "{He} is an ex-smoker of {packs} pack-years.",
        ),
        "terse": (
            "NKDA.",
            "FHx nil.",
            "SH: lives alone, indep ADLs.",
            "SH: lives with {partner}, mobile with stick.",
            "Never smoker.",
            "Alcohol {units} u/wk.",
            "CFS {cfs}.",
            "BMI {bmi}.",
            "Retired {job}.",
            "MDT discussed.",
            "Indep at baseline.",
            "Meds reviewed.",
            "No travel hx.",
            "SH: lives with {partner}, {steps} steps to front door.",
            "POC {poc}x/day.",
            "Collateral from {partner}.",
            "Flu vaccinated.",
            "Keen {hobby}.",
            "Allergies: nil known.",
            "Ex-smoker {packs} PY.",
        ),
    },
}


# Intros in the styles of real case descriptions that the standard intros lack (issue 27), used by cases drawn
# with `make_case(style=...)`: "pronoun", the sex given only by a pronoun ({sex_he} and kin are that pronoun and
# its answer span: the reader answers male or female from it); "child", a child named by a sex word ("a 4-year-old
# boy", {sex}) or by a neutral one ({child}) whose sex only a pronoun gives ("his mother").
STYLE_INTROS: dict[str, dict[Register, tuple[str, ...]]] = {
    "pronoun": {
        "narrative": (
            "{A} {age}-year-old presented with {duration} of {symptoms}; {sex_he} had been well until then.",
            "The patient, aged {age}, was admitted with {symptoms}, which {sex_he} had noticed over {duration}.",
            "{A} {age}-year-old with {symptoms} was seen in the emergency department; {sex_his} symptoms had begun "
            "{duration} earlier.",
            "We report a patient aged {age} who presented with {symptoms}; {sex_he} had been unwell for {duration}.",
            "{A} {age}-year-old was brought in by ambulance with {symptoms} after {duration} of decline at {sex_his} "
            "home.",
            "At {age} years of age, this patient developed {symptoms}, and {sex_his} family called for help after "
            "{duration}.",
            "The case concerns a previously independent {age}-year-old; {sex_he} presented with {symptoms}.",
        ),
        "terse": (
            "{age}yo, c/o {symptoms} x {duration}; {sex_he} denies trauma.",
            "Pt {age}, PC {symptoms}. {sex_He} reports {duration} of sx.",
            "{age} y/o, {symptoms} x {duration}; {sex_his} obs below.",
            "Age {age}. {sex_He} presents with {symptoms} ({duration}).",
        ),
    },
    "child": {
        "narrative": (
            "{A} {age}-year-old {sex} was brought in by {his} {carer} with {duration} of {symptoms}.",
            "{A} {age} year old {sex} presented to the paediatric emergency department with {symptoms}.",
            "We describe {a} {age}-year-old {sex} with {symptoms} that had developed over {duration}.",
            "{A} {age}-year-old {child} was brought to the emergency department by {sex_his} {carer} with "
            "{symptoms}.",
            "{A} {age} year old {child} presented with {duration} of {symptoms}; {sex_his} {carer} reported poor "
            "feeding.",
            "The patient, {a} {age}-year-old {child}, had {symptoms} for {duration}, and {sex_he} was "
            "increasingly drowsy.",
        ),
        "terse": (
            "{age}yo {sex}, BIB {his} {carer}, {symptoms} x {duration}.",
            "{age} y/o {child}, PC {symptoms}; {sex_his} {carer} concerned.",
        ),
    },
}
STYLES = ("standard", *STYLE_INTROS)
"""How a case's intro is written: `standard` (TEMPLATES' intros; every split and the corpus) or a style of
STYLE_INTROS (extra train and val rows only, `questions.STYLE_SHARE`)."""

class SentenceGrammar(NamedTuple):
    """The sentences of one slot and register, composed: an opening or a tail (or neither) around a frame."""

    frames: tuple[str, ...]
    """The clause that carries the value, without a final full stop; pronoun fields lower case ({he})."""
    openings: tuple[str, ...]
    """Words before the frame ("On admission, ")."""
    tails: tuple[str, ...]
    """Words after the frame, before the full stop (" on the ward")."""


# slot -> register -> grammar. Where a slot has one, its train-pool sentences are composed from it instead of
# drawn from TEMPLATES, whose reserved templates stay the held-out families (the grammar never says them: a test
# checks every composition). Why these two slots: a drug or dose question must tell the drug that was started
# from the others given beside it, whatever verb the report uses. With nine fixed train templates, "received"
# appeared only in "{He} also received", so a held-out "She received X" read as an extra drug; the frames below
# vary the verb, the subject and the voice of the started drug, and the extra drugs always carry a marker
# ("also", "other", "additional", "adjunct", "concurrent").
SENTENCE_GRAMMARS: dict[str, dict[Register, SentenceGrammar]] = {
    "treatment": {
        "narrative": SentenceGrammar(
            frames=(
                "{he} was started on {treatment}",
                "{he} was commenced on {treatment}",
                "{he} was treated with {treatment}",
                "{he} was given {treatment}",
                "{he} was prescribed {treatment}",
                "{he} was initiated on {treatment}",
                "{he} was placed on {treatment}",
                "{he} was loaded with {treatment}",
                "the team prescribed {treatment}",
                "the medical team started {treatment}",
                "the admitting team initiated {treatment}",
                "the registrar prescribed {treatment}",
                "treatment was commenced with {treatment}",
                "treatment consisted of {treatment}",
                "management included {treatment}",
                "initial therapy consisted of {treatment}",
                "the mainstay of treatment was {treatment}",
                "therapy was begun with {treatment}",
                "{treatment} was started",
                "{treatment} was commenced",
                "{treatment} was initiated",
                "{treatment} was prescribed",
                "{treatment} was given",
            ),
            openings=(
                "On admission, ",
                "In the emergency department, ",
                "After senior review, ",
                "Once the diagnosis was made, ",
                "Empirically, ",
                "Overnight, ",
                "On the ward, ",
                "Following discussion with the family, ",
                "After blood cultures were taken, ",
                "Within the first hour, ",
            ),
            tails=(
                " in the emergency department",
                " without complication",
                " as per local guidelines",
                " after discussion with pharmacy",
                " and was well tolerated",
                " with close monitoring",
                " on the ward",
                " the same day",
            ),
        ),
        "terse": SentenceGrammar(
            frames=(
                "Rx: {treatment}",
                "Started {treatment}",
                "Tx - {treatment}",
                "Plan: {treatment}",
                "Given {treatment}",
                "Meds: {treatment}",
                "Tx: {treatment}",
                "Initiated {treatment}",
                "Loaded w/ {treatment}",
                "Rx {treatment}",
                "Start {treatment}",
                "Tx started: {treatment}",
            ),
            openings=("ED: ", "On adm: ", "Ward: ", "D1: "),
            tails=(" in ED", " stat", " on adm", " - tolerated", " per protocol"),
        ),
    },
    "other_meds": {
        "narrative": SentenceGrammar(
            frames=(
                "{he} also received {meds}",
                "other medications included {meds}",
                "additional treatment comprised {meds}",
                "{meds} {were} also given",
                "{he} was additionally given {meds}",
                "concurrent therapy included {meds}",
                "{he} was also started on {meds}",
                "{he} was also treated with {meds}",
                "adjunctive therapy included {meds}",
                "{meds} {were} added",
                "{meds} {were} also prescribed",
                "{he} was also prescribed {meds}",
                "other drugs given were {meds}",
            ),
            openings=("In addition, ", "Alongside this, ", "During the admission, ", "Later, "),
            tails=(" for symptom control", " as adjuncts", " during the admission", " for comfort"),
        ),
        "terse": SentenceGrammar(
            frames=("Also: {meds}", "+ {meds}", "Other meds: {meds}", "Adjuncts: {meds}", "Also given {meds}",
                    "Addl: {meds}", "Plus {meds}"),
            openings=("Ward: ", "D2: "),
            tails=(" PRN", " as adjuncts"),
        ),
    },
}


# Fields whose value becomes an answer span (with the QA kind it answers). Aliases map several
# template fields to one span.
SPAN_FIELDS: dict[str, str] = {
    "age": "age",
    "sex": "sex",
    "sex_he": "sex",
    "sex_He": "sex",
    "sex_his": "sex",
    "symptoms": "symptoms",
    "history": "history",
    "spo2": "spo2",
    "hr": "hr",
    "temp": "temp",
    "imaging": "imaging",
    "incidental": "incidental",
    "diagnosis": "diagnosis",
    "treatment": "treatment",
    "oxygen": "oxygen",
    "physio": "physio",
    "outcome": "outcome",
    "los": "los",
    "los_day": "los",
    "Los_day": "los",
    "discharge": "discharge",
}
