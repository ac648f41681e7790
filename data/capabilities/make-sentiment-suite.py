#!/usr/bin/env python3
"""Writes data/capabilities/sentiment.jsonl: a CheckList-style capability suite for sentiment
(Ribeiro et al., "Beyond Accuracy: Behavioral Testing of NLP Models with CheckList", ACL 2020).

Each capability is a few templates, written for this suite, filled from small word lists; every
tweet's label follows from its template. The suite is for evaluation only — never train or tune
on it. Run:  python3 data/capabilities/make-sentiment-suite.py
Then:        tweetclf eval --input data/capabilities/sentiment.jsonl --group-column capability

Deterministic: the same file every run (no randomness, fixed order). Standard library only.
"""

import itertools
import json
import pathlib

PER_TEMPLATE = 20  # tweets taken from each template's fillings, spread over all of them

THINGS = ["the new app", "your support team", "this phone", "the hotel", "my new laptop",
          "the delivery service", "this bank", "the flight crew", "the update", "your website"]
POSITIVE_WORDS = ["good", "great", "helpful", "worth it", "easy to use", "friendly"]
LIKE_VERBS = ["like", "love", "enjoy", "recommend", "trust"]
PROBLEMS = ["my order was late", "my card was blocked", "my parcel went missing",
            "the app kept crashing", "my booking vanished", "I was charged twice",
            "my internet was down all morning", "my suitcase didn't arrive"]
FIXERS = ["your support team", "the agent on chat", "the rep on the phone", "customer service",
          "the store manager", "someone from your team"]
FIX_TIMES = ["in ten minutes", "within the hour", "the same day", "in two days", "overnight",
             "before I even finished my coffee"]
PRAISE = ["Impressed.", "Legend.", "Thank you!", "Great service 👍", "Really appreciate it.",
          "Way faster than I expected."]
QUESTIONS = ["How do I change the email address on my account?",
             "Can I update my delivery address after ordering?",
             "Where can I find my invoice in the app?",
             "Does the card work abroad?",
             "What time does the Main Street branch open on Saturday?",
             "Is there a student discount on the yearly plan?",
             "How long does a refund usually take?",
             "Can I bring a second bag on the 7am flight?"]
ANNOUNCEMENTS = ["The store opens at 9am on weekdays and 10am on Sundays.",
                 "Our app will be down for maintenance on Sunday from 2 to 4am.",
                 "Flight 221 now leaves from gate 14.",
                 "New opening hours from March: 8am to 6pm.",
                 "The office is closed on Monday for the public holiday.",
                 "Version 5.2 of the app is now available in the store.",
                 "Boarding for the Madrid flight starts at 10:40.",
                 "Our prices for the basic plan stay the same this year."]
NEUTRAL_EVENTS = ["just landed in Denver", "Monday again", "waiting for my parcel",
                  "back at the office", "flight boards in an hour", "new phone arrived today",
                  "first day with the new bank app", "heading to the airport"]
HAPPY_EMOTICONS = [":)", ":-)", ":D", "xD", "<3", "^_^", ";)", ":))"]
SAD_EMOTICONS = [":(", ":-(", ":'(", "-_-", ":/", "T_T", ":((", ">:("]
CLEAR_NEGATIVE = ["lost my luggage AGAIN", "two hours on hold and still no answer",
                  "the app deleted all my photos", "my flight got cancelled with no warning",
                  "charged twice and nobody replies", "worst customer service ever"]
CLEAR_POSITIVE = ["best flight I've had in years", "the new update is amazing",
                  "my package arrived a day early", "the staff were so kind today",
                  "finally a bank that answers the phone", "love the new seats"]
LAUGHTER = ["lol", "haha", "hahaha", "lmao", "LOL", "jajaja"]
INTENSIFIERS = ["really", "so", "extremely", "incredibly", "absolutely", "super"]
HAPPY_ADJECTIVES = ["happy", "pleased", "impressed", "grateful"]
UNHAPPY_ADJECTIVES = ["disappointed", "annoyed", "frustrated", "upset"]
SARCASM_MARKERS = ["#sarcasm", "/s", "🙄", "#not"]
ANNOYANCES = ["another delay", "three hours on hold", "a cancelled flight", "a broken app",
              "lost luggage", "a surprise fee"]

# The same meanings in other languages: complaints, praise for a fix, neutral questions.
FOREIGN = {
    "es": {
        "negative": ["Perdieron mi maleta otra vez.", "Dos horas esperando y nadie contesta.",
                     "La aplicación no funciona desde ayer, qué desastre.",
                     "Me cobraron dos veces y nadie responde."],
        "positive": ["El reembolso llegó en dos días, ¡más rápido de lo esperado!",
                     "La atención al cliente me resolvió el problema en diez minutos. ¡Gracias!",
                     "Me encanta la nueva versión de la app.",
                     "El personal del hotel fue muy amable."],
        "neutral": ["¿Cómo cambio el correo electrónico de mi cuenta?",
                    "La tienda abre a las 9 de lunes a viernes.",
                    "¿La tarjeta funciona en el extranjero?",
                    "El vuelo 221 sale ahora por la puerta 14."],
    },
    "fr": {
        "negative": ["Ils ont encore perdu ma valise.", "Deux heures d'attente et personne ne répond.",
                     "L'application ne marche plus depuis hier, quelle galère.",
                     "Débité deux fois et aucune réponse du service client."],
        "positive": ["Remboursé en deux jours, plus vite que prévu !",
                     "Le service client a réglé mon problème en dix minutes. Merci !",
                     "J'adore la nouvelle version de l'appli.",
                     "Le personnel de l'hôtel était adorable."],
        "neutral": ["Comment changer l'adresse e-mail de mon compte ?",
                    "Le magasin ouvre à 9h en semaine.",
                    "La carte fonctionne-t-elle à l'étranger ?",
                    "Le vol 221 part désormais de la porte 14."],
    },
    "de": {
        "negative": ["Schon wieder ist mein Koffer verloren gegangen.",
                     "Zwei Stunden in der Warteschleife und keiner geht ran.",
                     "Die App funktioniert seit gestern nicht, eine Katastrophe.",
                     "Zweimal abgebucht und niemand antwortet."],
        "positive": ["Die Erstattung kam in zwei Tagen, schneller als erwartet!",
                     "Der Kundenservice hat mein Problem in zehn Minuten gelöst. Danke!",
                     "Ich liebe die neue Version der App.",
                     "Das Hotelpersonal war super freundlich."],
        "neutral": ["Wie ändere ich die E-Mail-Adresse in meinem Konto?",
                    "Der Laden öffnet werktags um 9 Uhr.",
                    "Funktioniert die Karte auch im Ausland?",
                    "Flug 221 startet jetzt von Gate 14."],
    },
    "pt": {
        "negative": ["Perderam a minha mala outra vez.", "Duas horas esperando e ninguém atende.",
                     "O aplicativo não funciona desde ontem, que desastre.",
                     "Fui cobrado duas vezes e ninguém responde."],
        "positive": ["O reembolso chegou em dois dias, mais rápido do que eu esperava!",
                     "O atendimento resolveu meu problema em dez minutos. Obrigado!",
                     "Adorei a nova versão do aplicativo.",
                     "Os funcionários do hotel foram muito simpáticos."],
        "neutral": ["Como altero o e-mail da minha conta?",
                    "A loja abre às 9h nos dias úteis.",
                    "O cartão funciona no exterior?",
                    "O voo 221 agora sai do portão 14."],
    },
    "it": {
        "negative": ["Hanno perso di nuovo la mia valigia.", "Due ore in attesa e nessuno risponde.",
                     "L'app non funziona da ieri, che disastro.",
                     "Addebitato due volte e nessuno risponde."],
        "positive": ["Il rimborso è arrivato in due giorni, prima del previsto!",
                     "Il servizio clienti ha risolto il problema in dieci minuti. Grazie!",
                     "Adoro la nuova versione dell'app.",
                     "Il personale dell'hotel è stato gentilissimo."],
        "neutral": ["Come cambio l'indirizzo email del mio account?",
                    "Il negozio apre alle 9 nei giorni feriali.",
                    "La carta funziona anche all'estero?",
                    "Il volo 221 ora parte dal gate 14."],
    },
}


def spread(fillings, count=PER_TEMPLATE):
    """`count` fillings spread evenly over the whole product, so every word list is used."""
    fillings = list(fillings)
    if len(fillings) <= count:
        return fillings
    step = len(fillings) / count
    return [fillings[int(i * step)] for i in range(count)]


def template(text, label, *lists):
    return [(text.format(*values), label) for values in spread(itertools.product(*lists))]


def capabilities():
    yield "negation", (
        template("I {} {} {}.", "negative", ["don't", "do not", "no longer", "really don't"],
                 LIKE_VERBS, THINGS)
        + template("{} was not {} at all.", "negative",
                   [t[0].upper() + t[1:] for t in THINGS], POSITIVE_WORDS)
        + template("Not a single problem with {} so far, {} job.", "positive", THINGS,
                   ["great", "brilliant", "good"])
    )
    yield "emoticons", (
        template("{} {}", "positive", NEUTRAL_EVENTS, HAPPY_EMOTICONS)
        + template("{} {}", "negative", NEUTRAL_EVENTS, SAD_EMOTICONS)
        + template("{} {}", "negative", CLEAR_NEGATIVE, ["😡😡😡", "😤", "😭", "🙄"])
    )
    yield "laughter", (
        template("{} {}", "negative", CLEAR_NEGATIVE, LAUGHTER)
        + template("{} {}", "positive", CLEAR_POSITIVE, LAUGHTER)
    )
    yield "praise for a resolved problem", (
        template("{} but {} fixed it {}. {}", "positive", PROBLEMS, FIXERS, FIX_TIMES, PRAISE)
        + template("{}, {} sorted it out {}. {}", "positive",
                   [p[0].upper() + p[1:] for p in PROBLEMS], FIXERS, FIX_TIMES, PRAISE)
    )
    yield "questions and announcements", (
        [(text, "neutral") for text in QUESTIONS + ANNOUNCEMENTS]
        + template("How do I {} my {} {}?", "neutral", ["change", "update", "reset"],
                   ["email address", "password", "phone number", "delivery address"],
                   ["in the app", "on the website"])
        + template("The {} opens at {} on {}.", "neutral",
                   ["store", "branch", "help desk", "pharmacy"], ["8am", "9am", "10:30"],
                   ["weekdays", "Saturdays", "public holidays"])
    )
    yield "intensifiers", (
        template("I'm {} {} with {}.", "positive", INTENSIFIERS, HAPPY_ADJECTIVES, THINGS)
        + template("I'm {} {} with {}.", "negative", INTENSIFIERS, UNHAPPY_ADJECTIVES, THINGS)
    )
    yield "sarcasm with a marker", (
        template("Oh great, {}. Just what I needed {}", "negative", ANNOYANCES, SARCASM_MARKERS)
        + template("Love starting my day with {} {}", "negative", ANNOYANCES, SARCASM_MARKERS)
    )
    yield "non-English", [
        (text, label)
        for language in FOREIGN.values()
        for label, texts in language.items()
        for text in texts
    ]


def main():
    out = pathlib.Path(__file__).resolve().parent / "sentiment.jsonl"
    counts = {}
    with open(out, "w", encoding="utf-8") as f:
        for capability, items in capabilities():
            seen = set()
            for text, label in items:
                if text in seen:
                    continue
                seen.add(text)
                f.write(json.dumps({"text": text, "label": label, "capability": capability},
                                   ensure_ascii=False) + "\n")
            counts[capability] = len(seen)
    for capability, count in counts.items():
        print(f"{capability:32} {count}")


if __name__ == "__main__":
    main()
