"""Question phrasings per kind (answerable and never-answerable) and the words and frames of the question
grammar (data only)."""

from __future__ import annotations

# =========================================================================== questions
# kind -> question phrasings. {drug} is the primary drug's name; {he}/{He}/{his} pronouns.
QUESTIONS: dict[str, tuple[str, ...]] = {
    "age": (
        "How old is the patient?",
        "What is the patient's age?",
        "Age?",
        "How old was the patient at presentation?",
        "What age was the patient?",
        "Patient age?",
        "What was the age of the patient on admission?",
        "How old is {he}?",
        "State the patient's age.",
        "How many years old is the patient?",
        "What was the patient's age at admission?",
        "Give the age of the patient.",
    ),
    "sex": (
        "What is the patient's sex?",
        "Sex?",
        "Is the patient male or female?",
        "What sex was the patient?",
        "Was the patient a man or a woman?",
        "Patient sex?",
        "Gender of the patient?",
        "Is this a male or female patient?",
        "Male or female?",
    ),
    "diagnosis": (
        "What was the diagnosis?",
        "Diagnosis?",
        "What was the patient diagnosed with?",
        "What condition did the patient have?",
        "What was the final diagnosis?",
        "Which diagnosis was made?",
        "What illness was the patient admitted with?",
        "What was {he} treated for?",
        "What was the working diagnosis?",
        "Dx?",
    ),
    "symptoms": (
        "What were the presenting symptoms?",
        "What symptoms did the patient present with?",
        "Presenting complaint?",
        "How did the patient present?",
        "Which symptoms were reported on admission?",
        "What were the symptoms at presentation?",
        "What did {he} present with?",
        "Symptoms?",
        "What complaints led to admission?",
        "Which symptoms did {he} report?",
    ),
    "history": (
        "What comorbidities did the patient have?",
        "Past medical history?",
        "What was the patient's medical background?",
        "Which conditions were in the patient's history?",
        "What pre-existing conditions were noted?",
        "Comorbidities?",
        "What is the relevant background?",
        "Which comorbidities are documented?",
        "PMH?",
    ),
    "treatment": (
        "Which drug was started and at what dose?",
        "What medication and dose was given?",
        "What was the main treatment?",
        "What treatment was started?",
        "Treatment?",
        "What was the patient started on?",
        "Which medication regimen was commenced?",
        "What was {he} given, and at what dose?",
        "Rx?",
        "Which treatment, with dose, was commenced?",
    ),
    "drug": (
        "What medication was given?",
        "Which drug was started?",
        "Name the drug that was started.",
        "What drug did the patient receive?",
        "Which medicine was commenced?",
        "Drug started?",
        "What was the first-line drug?",
        "Which medication was {he} started on?",
    ),
    "dose": (
        "What dose of {drug} was given?",
        "How much {drug} was given?",
        "What was the dose of {drug}?",
        "Dose of {drug}?",
        "At what dose and route was {drug} given?",
        "How was {drug} dosed?",
        "What was the {drug} regimen?",
        "Give the dose of {drug}.",
    ),
    "oxygen": (
        "What oxygen therapy was given?",
        "What respiratory support did the patient need?",
        "Oxygen therapy?",
        "How was the patient oxygenated?",
        "What level of respiratory support was required?",
        "What respiratory support did {he} receive?",
        "Respiratory support?",
        "What oxygen did {he} need?",
        "Which oxygen delivery was used?",
    ),
    "physio": (
        "What physiotherapy was provided?",
        "Physiotherapy?",
        "What did physiotherapy involve?",
        "Which physiotherapy interventions were used?",
        "What rehabilitation did the patient receive?",
        "What did the physiotherapist do?",
        "What physiotherapy did {he} receive?",
        "Which rehabilitation interventions were delivered?",
    ),
    "outcome": (
        "What was the outcome?",
        "How did the patient respond?",
        "Outcome?",
        "What happened to the patient?",
        "How did the patient progress?",
        "What was the response to treatment?",
        "How did {he} do?",
        "What was the clinical course?",
        "What was the result of treatment?",
    ),
    "los": (
        "How long was the hospital stay?",
        "What was the length of stay?",
        "LOS?",
        "How long did the patient stay in hospital?",
        "Length of stay?",
        "How long was {he} in hospital?",
        "How many days was the patient in hospital?",
        "Duration of admission?",
    ),
    "discharge": (
        "Where was the patient discharged to?",
        "What was the discharge destination?",
        "Discharge destination?",
        "Where did the patient go after discharge?",
        "Where did {he} go on leaving hospital?",
        "Where was {he} discharged?",
        "To where was the patient discharged?",
        "What was the destination on discharge?",
    ),
    "spo2": (
        "What was the oxygen saturation on arrival?",
        "SpO2 on admission?",
        "What was the initial SpO2?",
        "What were the patient's saturations at presentation?",
        "Saturations?",
        "What was the SpO2 on arrival?",
        "Oxygen saturation at presentation?",
    ),
    "hr": (
        "What was the heart rate?",
        "HR on arrival?",
        "What was the pulse on admission?",
        "Heart rate?",
        "What was the pulse rate?",
        "Heart rate on admission?",
    ),
    "temp": (
        "What was the temperature?",
        "Temperature on arrival?",
        "What temperature was recorded?",
        "Temp?",
        "What was the body temperature on admission?",
        "What was {his} temperature?",
    ),
    "imaging": (
        "What did imaging show?",
        "What was found on imaging?",
        "Imaging findings?",
        "What did the scan show?",
        "What was seen on radiology?",
        "What did the imaging demonstrate?",
        "Radiology findings?",
    ),
    "incidental": (
        "What incidental finding was noted?",
        "Which incidental lesion was reported?",
        "Incidental finding?",
        "What was found incidentally?",
        "Was anything found incidentally?",
        "What unrelated finding was reported?",
    ),
}
# How a person would name a kind, where a page lists them ("It answers questions about age, heart rate, ...").
KIND_LABELS: dict[str, str] = {
    "hr": "heart rate", "spo2": "oxygen saturation", "temp": "temperature", "los": "length of stay",
    "physio": "physiotherapy", "oxygen": "respiratory support", "incidental": "incidental findings",
    "history": "medical history", "discharge": "discharge destination", "dose": "doses",
    "drug": "drugs", "treatment": "treatment", "imaging": "imaging",
}
# Kinds whose answers carry the reserved values; the test splits ask about them more often.
RESERVED_VALUE_KINDS = ("age", "symptoms", "drug", "treatment", "dose")

ABSENT_QUESTIONS: dict[str, tuple[str, ...]] = {
    # What a case report never says: asked, the answer is NOT_STATED whatever the context.
    "blood type": ("What is the patient's blood type?", "Blood group?", "What blood group is {he}?",
                   "Which blood type does the patient have?", "Blood type?"),
    "insurance": ("What insurance does the patient have?", "Insurance provider?", "Who insures the patient?",
                  "Is the patient insured, and with whom?"),
    "address": ("What is the patient's home address?", "Address?", "What is {his} street address?",
                "Patient's postal address?"),
    "phone": ("What is the patient's phone number?", "Contact number?", "What number can {he} be reached on?"),
    "religion": ("What is the patient's religion?", "Religion?", "Which faith does the patient follow?"),
    "eye colour": ("What colour are the patient's eyes?", "Eye colour?", "What colour are {his} eyes?"),
}
OUT_OF_SCOPE_QUESTIONS: dict[str, tuple[str, ...]] = {
    # Families of questions that are not about the case at all, or about what no case report is written to say:
    # the kind head learns them as one class, `other`, and the answer is NOT_STATED. The families in
    # HELD_OUT_SCOPE_FAMILIES are never trained on: they measure whether "other" reaches past what was drilled.
    # None may share a frame with a clinical question: with "Which day of the week did the patient present?",
    # "What year did this happen?" and a family of feelings ("How did his family feel?") among them, the kind
    # head read "How did the patient present?" and "What happened to the patient?" as `other` (36 of the 55
    # "not stated" answers of one seed on test_unseen_phrasing; benchmarks/qa_scope.py).
    "people": ("What is the name of the patient's doctor?", "Who was the consultant in charge?",
               "What is the nurse's name?", "Which doctor looked after {him}?", "Name of the surgeon?",
               "Who is the patient's GP?"),
    "family": ("How many children does the patient have?", "What is {his} partner's name?",
               "Does the patient have any brothers or sisters?", "Who is {his} next of kin?",
               "Is the patient married?", "What are the names of {his} parents?"),
    "work": ("What is the patient's occupation?", "Where does {he} work?", "Who is the patient's employer?",
             "What job does the patient do?", "How much does {he} earn?", "Is the patient retired?"),
    "lifestyle": ("What are the patient's hobbies?", "Does {he} have any pets?",
                  "What is the patient's favourite food?", "Which sport does {he} play?",
                  "What music does the patient like?", "Where does {he} go on holiday?"),
    "body": ("How tall is the patient?", "What is {his} shoe size?", "What colour is the patient's hair?",
             "What is the patient's dress size?", "Does {he} wear glasses?"),
    "records": ("What is the patient's hospital number?", "What is {his} email address?",
                "What is the patient's passport number?", "What is {his} NHS number?",
                "What is the patient's national insurance number?"),
    "place": ("Which ward was the patient on?", "What was {his} bed number?", "In which city does the patient live?",
              "Where was the patient born?", "Which country is {he} from?"),
    "time": ("What time was the patient admitted?", "On what date was {he} seen?",
             "Which day of the week was it?", "What year was it?", "What time of day was {he} seen?"),
    "chat": ("Hello, how are you?", "What is your name?", "Are you a robot?", "Thank you!", "Can you hear me?",
             "Who made you?"),
    "requests": ("Write a poem about the sea.", "Tell me a joke.", "Translate this into French.",
                 "Can you write my essay?", "Sing me a song.", "Draw a picture of a cat."),
    "weather": ("What is the weather like today?", "Will it rain tomorrow?", "How hot is it outside?",
                "Is it snowing?"),
    "world": ("What is the capital of France?", "Who won the World Cup?", "How far away is the moon?",
              "What is the boiling point of water?", "Who wrote Hamlet?", "How many planets are there?"),
    "money": ("How much did the treatment cost?", "Who paid the hospital bill?", "How much is the patient's rent?",
              "Does {he} have any debts?", "What is the price of the medicine?"),
    "education": ("Which school did the patient attend?", "What did {he} study at university?",
                  "What is the patient's highest qualification?", "Which university did {he} go to?",
                  "What grades did the patient get?"),
    "future": ("What will the patient do next summer?", "Where will {he} live in ten years?",
               "Will the patient win the lottery?", "What will {he} have for dinner tomorrow?"),
}
HELD_OUT_SCOPE_FAMILIES = ("world", "money", "education", "future")
"""Out-of-scope families no training question comes from (see OUT_OF_SCOPE_QUESTIONS)."""

# Kinds that may be asked of a window left without their answer: values stated once, in one form. Not sex (a
# pronoun still tells it), nor a diagnosis or symptoms (other sentences may name them in other words).
WINDOWED_ABSENCE_KINDS = ("age", "drug", "dose", "spo2", "hr", "temp", "los")


# =========================================================================== a question language
# The fixed phrasings above are few (about 150 for training), too few for a model trained from scratch to learn
# that "age", "how old" and "years" ask the same thing. Training questions are therefore also sampled from a small
# compositional grammar: slot words and their synonyms and abbreviations, in wh-, imperative, polite and terse
# frames, with lower case, a missing "?" and the odd typo. The reserved (held-out) phrasings above are never
# produced (a sampled question that matches one is drawn again), so `test_unseen_phrasing` still measures
# wording the model never saw; the core words people use (sex/gender, age/how old, drug/medication) are all in.
SLOT_WORDS: dict[str, tuple[str, ...]] = {
    "age": ("age", "age in years", "age at presentation", "age on admission", "years of age"),
    "sex": ("sex", "gender", "biological sex"),
    "diagnosis": ("diagnosis", "final diagnosis", "working diagnosis", "main diagnosis", "dx", "condition"),
    "symptoms": ("presenting symptoms", "symptoms", "presenting complaint", "complaints on admission",
                 "symptoms at presentation"),
    "history": ("past medical history", "medical history", "comorbidities", "background", "pmh", "co-morbidities"),
    "treatment": ("treatment", "medication and dose", "drug and dose", "treatment regimen", "main treatment"),
    "drug": ("drug", "medication", "medicine", "drug started", "medication started", "new medication"),
    "dose": ("dose of {drug}", "dosage of {drug}", "{drug} dose", "{drug} dosage", "dose of {drug} given"),
    "oxygen": ("oxygen therapy", "respiratory support", "oxygen support", "O2 requirement", "oxygen requirement"),
    "physio": ("physiotherapy", "physio", "physiotherapy input", "rehabilitation", "rehab"),
    "outcome": ("outcome", "clinical course", "response to treatment", "progress"),
    "los": ("length of stay", "LOS", "hospital stay", "length of admission", "duration of admission"),
    "discharge": ("discharge destination", "destination on discharge", "discharge plan", "d/c destination"),
    "spo2": ("oxygen saturation", "SpO2", "sats", "saturations", "O2 sats"),
    "hr": ("heart rate", "pulse", "HR", "pulse rate"),
    "temp": ("temperature", "temp", "body temperature"),
    "imaging": ("imaging findings", "imaging", "radiology findings", "scan findings", "imaging result"),
    "incidental": ("incidental finding", "incidental lesion", "unrelated finding", "incidental result"),
    "blood type": ("blood type", "blood group", "ABO group"),
    "insurance": ("insurance", "insurance provider", "insurer", "health insurance"),
    "address": ("home address", "address", "postal address", "street address"),
    "phone": ("phone number", "contact number", "telephone number", "mobile number"),
    "religion": ("religion", "faith", "religious affiliation"),
    "eye colour": ("eye colour", "eye color", "colour of the eyes"),
}
SLOT_QUESTIONS: dict[str, tuple[str, ...]] = {
    # Whole questions a slot word does not make: {subj} is "the patient", "this patient", "the pt" or a pronoun.
    "age": ("how old is {subj}", "how old was {subj}", "how many years old is {subj}", "how old",
            "what age is {subj}", "how old is {subj} in years"),
    "sex": ("is {subj} male or female", "was {subj} a man or a woman", "male or female", "what gender is {subj}",
            "what sex is {subj}", "man or woman", "is {subj} a man or a woman"),
    "diagnosis": ("what was {subj} diagnosed with", "what did {subj} have", "what was wrong with {subj}"),
    "symptoms": ("what did {subj} present with", "what did {subj} complain of", "what brought {subj} in"),
    "history": ("what conditions does {subj} have", "what is {subj} known to have"),
    "treatment": ("what was {subj} given and at what dose", "what was {subj} treated with"),
    "drug": ("what was {subj} started on", "which drug was {subj} given", "what medication did {subj} get",
             "what medicine was {subj} given", "which medication was started"),
    "dose": ("how much {drug} was given", "how much {drug} did {subj} get", "what dose of {drug} did {subj} get"),
    "oxygen": ("how much oxygen did {subj} need", "what oxygen was {subj} on"),
    "physio": ("what physio did {subj} get", "what rehab did {subj} have"),
    "outcome": ("how did {subj} get on", "what happened in the end", "did {subj} get better"),
    "los": ("how long was {subj} in hospital", "how many days was {subj} admitted", "how long did {subj} stay"),
    "discharge": ("where was {subj} discharged to", "where did {subj} go after discharge",
                  "where did {subj} go home to"),
    "spo2": ("what were {subj_poss} sats", "what was {subj_poss} oxygen saturation on arrival"),
    "hr": ("what was {subj_poss} pulse", "how fast was {subj_poss} heart rate"),
    "temp": ("was {subj} febrile, and what was the temperature", "what temp did {subj} have"),
    "imaging": ("what did the imaging show", "what did the x-ray or scan show"),
    "incidental": ("what else was found", "was there an incidental finding"),
    "blood type": ("what blood group is {subj}",),
    "insurance": ("who insures {subj}",),
    "address": ("where does {subj} live",),
    "phone": ("how can {subj} be reached by phone",),
    "religion": ("what faith is {subj}",),
    "eye colour": ("what colour are {subj_poss} eyes",),
}
WH_FRAMES = ("what is the {poss} {slot}", "what was the {poss} {slot}", "what was {subj_poss} {slot}",
              "what is {subj_poss} {slot}", "what {slot} was recorded", "what's the {slot}", "what was the {slot}",
              "which {slot} is documented", "what {slot} did {subj} have", "{poss} {slot}", "{slot}",
              "{slot} of the patient", "pt {slot}", "the {poss} {slot}", "{slot} please")
COMMAND_FRAMES = ("give the {poss} {slot}", "state the {slot}", "tell me the {poss} {slot}",
                   "please give the {slot}", "report the {slot}", "list the {slot}", "i need the {poss} {slot}",
                   "find the {slot}", "look up the {poss} {slot}")
POLITE_FRAMES = ("could you tell me the {poss} {slot}", "can you give me {subj_poss} {slot}",
                  "do you know the {poss} {slot}", "would you tell me the {slot}")
SUBJECTS = (("the patient", "patient's"), ("this patient", "patient's"), ("the pt", "pt's"))
