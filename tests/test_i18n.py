"""The message catalogues: every message of the code in the .pot, and in every language's
.po and .mo with the same placeholders and all its plural forms; the texts the code picks."""

from __future__ import annotations

import ast
import gettext
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from cardbridge import i18n
from cardbridge.errors import (
    CardbridgeError,
    Code,
    ConfigError,
    PinIncorrectError,
    PinInvalidLengthError,
)

ROOT = Path(__file__).parent.parent
LOCALE_DIR = Path(i18n.LOCALE_DIR)
TRANSLATED = [lang for lang in i18n.LANGUAGES if lang != i18n.SOURCE_LANGUAGE]


def _po_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"


def _read_po(path: Path) -> Catalog:
    with path.open("rb") as file:
        return read_po(file)


def _key(message: Message) -> tuple[str | None, str | tuple[str, ...]]:
    return message.context, message.id


def _messages(catalog: Catalog) -> dict[tuple[str | None, str | tuple[str, ...]], Message]:
    return {_key(message): message for message in catalog if message.id}


def test_every_language_but_the_source_has_a_catalogue() -> None:
    assert i18n.SOURCE_LANGUAGE in i18n.LANGUAGES and i18n.DEFAULT_LANGUAGE in i18n.LANGUAGES
    on_disk = sorted(path.name for path in LOCALE_DIR.iterdir() if path.is_dir())
    assert on_disk == sorted(TRANSLATED), "a catalogue for every language in LANGUAGES, and none other"
    for lang in TRANSLATED:
        assert _po_path(lang).is_file() and _po_path(lang).with_suffix(".mo").is_file()


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_message_in_every_language_with_the_same_placeholders(lang: str) -> None:
    template = _messages(_read_po(LOCALE_DIR.parent / f"{i18n.DOMAIN}.pot"))
    catalog = _read_po(_po_path(lang))
    assert catalog.locale_identifier == lang
    assert catalog.plural_forms, "the Plural-Forms header"
    nplurals = catalog.num_plurals
    assert gettext.c2py(catalog.plural_expr)(1) < nplurals
    translated = _messages(catalog)
    assert translated.keys() == template.keys(), "run make i18n: the .po and the .pot have other messages"
    problems = []
    for key, message in translated.items():
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set().union(*(i18n.placeholders(msgid) for msgid in ids))
        if message.fuzzy:
            problems.append(f"{key}: fuzzy (check the translation, then remove the flag)")
        if len(forms) != (nplurals if message.pluralizable else 1):
            problems.append(f"{key}: {len(forms)} forms, Plural-Forms says {nplurals}")
        for index, form in enumerate(forms):
            if not form.strip():
                problems.append(f"{key}: form {index} is not translated")
                continue
            names = i18n.placeholders(form)
            # A plural's first form may leave out the number ("one try"); nothing else may differ.
            ok = names <= wanted if message.pluralizable and index == 0 and nplurals > 1 else names == wanted
            if not ok:
                problems.append(f"{key}: form {index} has placeholders {sorted(names)}, the English {sorted(wanted)}")
            else:
                form.format(**dict.fromkeys(wanted, 7))  # formats with its own placeholders and nothing else
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_committed_mo_is_the_compiled_po(lang: str) -> None:
    compiled = io.BytesIO()
    write_mo(compiled, _read_po(_po_path(lang)))
    committed = _po_path(lang).with_suffix(".mo").read_bytes()
    assert committed == compiled.getvalue(), "run make i18n (pybabel compile) and commit the .mo"


def test_the_pot_has_the_messages_of_the_code(tmp_path: Path) -> None:
    pot = tmp_path / "cardbridge.pot"
    pybabel = Path(sys.executable).parent / "pybabel"
    subprocess.run(["make", "-s", "i18n-pot", f"POT={pot}", f"PYBABEL={pybabel}"], cwd=ROOT, check=True, timeout=120)
    extracted = _messages(_read_po(pot))
    committed = _messages(_read_po(LOCALE_DIR.parent / f"{i18n.DOMAIN}.pot"))
    assert sorted(committed, key=str) == sorted(extracted, key=str), "run make i18n"
    for key, message in extracted.items():
        assert committed[key].auto_comments == message.auto_comments, f"{key}: run make i18n (comments)"


# The positions of the message arguments of the extraction keywords (Makefile BABEL_KEYWORDS).
KEYWORDS = {"N_": (0,), "gettext": (1,), "say": (1,), "ngettext": (1, 2), "pgettext": (1, 2), "npgettext": (1, 2, 3)}


def _keyword(node: ast.AST) -> str | None:
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name if name in KEYWORDS and len(node.args) > max(KEYWORDS[name]) else None


def test_every_message_is_where_pybabel_extract_finds_it() -> None:
    # pybabel extract takes a string literal (or literals side by side) as a keyword's
    # message, and nothing inside an f-string: a message chosen with `if`, built with an
    # f-string or +, or translated inside an f-string stays English in every language.
    # A looked-up message (a name, a table's item, a .get) is marked with N_ where it is defined.
    problems = []
    for path in sorted(Path(i18n.__file__).parent.parent.rglob("*.py")):
        if path == Path(i18n.__file__):
            continue  # the keywords themselves, calling the standard library's gettext
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.JoinedStr):
                problems += [f"{where}: a message inside an f-string" for inner in ast.walk(node) if _keyword(inner)]
            name = _keyword(node)
            if name is None:
                continue
            assert isinstance(node, ast.Call)
            for index in KEYWORDS[name]:
                argument = node.args[index]
                literal = isinstance(argument, ast.Constant) and isinstance(argument.value, str)
                if name == "N_" or (name in ("pgettext", "npgettext") and index == 1):
                    ok = literal  # what is marked, and a context, are literals
                else:
                    ok = literal or isinstance(argument, ast.Name | ast.Subscript | ast.Attribute | ast.Call)
                if not ok:
                    problems.append(f"{where}: {name}'s message is {ast.unparse(argument)[:60]}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_the_catalogue_is_read_at_run_time(lang: str) -> None:
    assert i18n.gettext(lang, "Wrong PIN.") == "Feil PIN-kode."
    assert i18n.ngettext(lang, "You have {n} try left.", "You have {n} tries left.", 3, n=3).startswith("Du har 3 ")
    assert i18n.pgettext(lang, "this language's name", "English") == {"nb": "Bokmål", "nn": "Nynorsk"}[lang]


def test_run_time_uses_the_standard_library_only_and_reads_a_catalogue_when_it_is_used() -> None:
    code = (
        "import sys; from cardbridge import i18n; assert not i18n._catalogues, 'read at import'; "
        "print(i18n.gettext('nn', 'Wrong PIN.')); "
        "assert not [m for m in sys.modules if m == 'babel' or m.startswith('babel.')], 'Babel at run time'; "
        "assert set(i18n._catalogues) == {'nn'}"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Feil PIN-kode.\n"


def test_an_install_without_its_catalogues_still_speaks_english(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(i18n, "LOCALE_DIR", str(tmp_path))
    monkeypatch.setattr(i18n, "_catalogues", {})
    assert i18n.error_text(Code.PIN_INCORRECT, "nn", retries_left=2) == "Wrong PIN. You have 2 tries left."


@pytest.mark.parametrize("code", list(Code))
def test_every_error_code_has_a_plain_message(code: Code) -> None:
    from cardbridge.i18n.errors import ERROR_TEXTS

    assert str(code) in ERROR_TEXTS
    texts = {lang: i18n.error_text(code, lang) for lang in i18n.LANGUAGES}
    assert len(set(texts.values())) >= 2 or code is Code.PIN_INCORRECT, "nb/nn/en look untranslated"
    for value in texts.values():
        assert str(code) not in value, "the code is printed beside the message, not in it"


def test_pin_incorrect_names_the_tries_left_and_warns_before_the_last() -> None:
    assert i18n.error_text(Code.PIN_INCORRECT, "en") == "Wrong PIN."
    assert i18n.error_text(Code.PIN_INCORRECT, "en", retries_left=2) == "Wrong PIN. You have 2 tries left."
    assert i18n.error_text(Code.PIN_INCORRECT, "nb", retries_left=2) == "Feil PIN-kode. Du har 2 forsøk igjen."
    assert i18n.error_text(Code.PIN_INCORRECT, "nn", retries_left=2) == "Feil PIN-kode. Du har 2 forsøk att."
    last = i18n.error_text(Code.PIN_INCORRECT, "en", retries_left=1)
    assert "1 try left" in last and "blocked" in last
    assert "sperret" in i18n.error_text(Code.PIN_INCORRECT, "nb", retries_left=1)
    assert "sperra" in i18n.error_text(Code.PIN_INCORRECT, "nn", retries_left=1)
    # None means "the card did not tell".
    assert i18n.error_text(Code.PIN_INCORRECT, "en", retries_left=None) == "Wrong PIN."


@pytest.mark.parametrize(
    ("country", "pin", "where"),
    [
        ("EE", "authentication", "politsei.ee"),  # a courier-delivered card: activated at the police's portal
        ("EE", "signing", "DigiDoc4"),  # PIN2 changed in DigiDoc4, as the Web eID app says
        ("FI", "authentication", "DigiSign Client"),
        ("FI", "signing", "DigiSign Client"),
    ],
)
def test_pin_not_active_says_where_to_activate_it(country: str, pin: str, where: str) -> None:
    from cardbridge.errors import PinNotActiveError

    error = PinNotActiveError("x", pin=pin, country=country)
    texts = {lang: i18n.error_message(error, lang) for lang in i18n.LANGUAGES}
    assert all(where in text for text in texts.values()), texts
    assert len(set(texts.values())) == len(texts), "translated"
    assert i18n.error_message(error, "en") != i18n.error_text(Code.PIN_NOT_ACTIVE, "en")
    # Another country's card, or none known: the general advice.
    for other in ({"pin": pin, "country": "BE"}, {"pin": pin}):
        assert i18n.error_message(PinNotActiveError("x", **other), "en") == i18n.error_text(Code.PIN_NOT_ACTIVE, "en")


def test_pin_blocked_names_the_pin_the_card_names() -> None:
    from cardbridge.errors import PinBlockedError

    named = PinBlockedError("x", retries_left=0, pinName="PIN2 (allekirjoitustunnusluku)")
    assert i18n.error_message(named, "en") == (
        "PIN2 (allekirjoitustunnusluku) is blocked. Unblock it with your PUK code, or contact the card's issuer."
    )
    assert i18n.error_message(named, "nb").startswith("PIN2 (allekirjoitustunnusluku) er sperret.")
    assert i18n.error_message(named, "nn").startswith("PIN2 (allekirjoitustunnusluku) er sperra.")
    # No name (a PKCS#11 token, a PIV card): the general text.
    generic = i18n.error_text(Code.PIN_BLOCKED, "en")
    assert generic.startswith("The PIN is blocked.")
    assert i18n.error_message(PinBlockedError("x", retries_left=0), "en") == generic


def test_error_message_takes_the_exception_details() -> None:
    assert i18n.error_message(PinIncorrectError("x", retries_left=2), "en") == "Wrong PIN. You have 2 tries left."
    error = PinInvalidLengthError("x", minLength=4, maxLength=8)
    assert i18n.error_message(error, "nn") == "PIN-koden må ha 4 til 8 teikn. Prøv igjen."
    assert "cardbridge doctor" in i18n.error_message(ConfigError("/etc/x: bad"), "nb")


def test_no_card_tells_what_to_do() -> None:
    assert i18n.error_text(Code.NO_CARD, "nb").endswith("Sett inn ID-kortet i kortleseren.")
    assert i18n.error_text(Code.NO_CARD, "nn").endswith("Set inn ID-kortet i kortlesaren.")
    assert i18n.error_text(Code.NO_CARD, "en").endswith("Insert your ID card into the card reader.")


def test_unknown_code_still_reads_plainly() -> None:
    assert (
        i18n.error_text("SOMETHING_NEW", "en") == "Something went wrong (SOMETHING_NEW). Try again, or contact support."
    )
    assert i18n.error_message(CardbridgeError("x"), "en") == i18n.error_text(Code.INTERNAL, "en")


def test_plural_forms() -> None:
    def tries(lang: str, n: int) -> str:
        return i18n.ngettext(lang, "You have {n} try left.", "You have {n} tries left.", n, n=n)

    assert tries("en", 1) == "You have 1 try left."
    assert tries("en", 3) == "You have 3 tries left."
    assert tries("nb", 1) == "Du har 1 forsøk igjen."
    assert tries("nn", 0) == "Du har 0 forsøk att."


@pytest.mark.parametrize(
    ("choices", "environ", "expected"),
    [
        (("en", "nn"), {}, "en"),
        ((None, "NN"), {}, "nn"),
        ((None, None), {"LANG": "nn_NO.UTF-8"}, "nn"),
        ((None,), {"LANG": "no_NO.UTF-8"}, "nb"),
        ((None,), {"LC_ALL": "en_GB.UTF-8", "LANG": "nb_NO.UTF-8"}, "en"),
        # A language we lack (named by the caller or the system) is English, not bokmål ...
        (("de",), {"LANG": "de_DE.UTF-8"}, "en"),
        (("et",), {}, "en"),
        ((None,), {"LANG": "fi_FI.UTF-8"}, "en"),
        ((), {"LC_ALL": "nl_BE.UTF-8", "LANG": "nb_NO.UTF-8"}, "en"),
        ((), {"LC_MESSAGES": "fr_BE.UTF-8"}, "en"),
        # ... unless a later choice or the system names one of ours.
        (("et", "nn"), {}, "nn"),
        (("fi",), {"LANG": "nb_NO.UTF-8"}, "nb"),
        (("de",), {"LANG": "no_NO.UTF-8"}, "nb"),
        # LANGUAGE (GNU gettext's list) comes before the locale, but not with a C locale.
        ((), {"LANGUAGE": "fi:nn", "LANG": "fi_FI.UTF-8"}, "nn"),
        ((), {"LANGUAGE": "fi", "LANG": "nb_NO.UTF-8"}, "nb"),
        ((), {"LANGUAGE": "nn", "LANG": "C.UTF-8"}, "nb"),
        # Nothing names a language: bokmål.
        ((), {"LANG": "C.UTF-8"}, "nb"),
        ((), {"LC_ALL": "POSIX"}, "nb"),
        ((), {"LANG": "C"}, "nb"),
        ((None, ""), {}, "nb"),
    ],
)
def test_resolve_language(
    choices: tuple[str | None, ...], environ: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environ.items():
        monkeypatch.setenv(variable, value)
    assert i18n.resolve_language(*choices) == expected


# A request's ``lang`` that the HTTP API and the native host both refuse (one rule, in i18n).
BAD_LANGS = ["", "n", "nb\n", "nb\x00", "x" * 5000, "nb-", "nb NO", "12", "nb-NO-a-b-c", "nø", "en-GB-abcdefghi"]
GOOD_LANGS = ["nb", "nn", "en", "NB", "en-GB", "en_GB", "nb-NO", "de", "zh-Hant-TW", "fil"]


@pytest.mark.parametrize("value", GOOD_LANGS)
def test_language_tags_a_caller_may_send(value: str) -> None:
    assert i18n.is_language_tag(value)
    i18n.check_language_tag(value)
    assert i18n.request_language(value, "nn") == (i18n.our_language(value) or "nn")


@pytest.mark.parametrize("value", [*BAD_LANGS, 7, ["nb"]], ids=lambda v: repr(v)[:20])
def test_anything_else_is_invalid_argument(value: object) -> None:
    from cardbridge.errors import InvalidInputError

    assert not i18n.is_language_tag(value)
    with pytest.raises(InvalidInputError) as info:
        i18n.request_language(value, "nn")
    assert info.value.code == Code.INVALID_ARGUMENT
    assert len(info.value.message) < 100


def test_no_lang_is_the_fallback() -> None:
    i18n.check_language_tag(None)
    assert i18n.request_language(None, "en") == "en"


@pytest.mark.parametrize(
    ("value", "fallbacks", "expected"),
    [("et", (), "en"), ("fi", (None,), "en"), ("et", ("nn",), "nn"), ("nn", ("en",), "nn"), (None, (), "nb")],
)
def test_request_language_we_lack_is_english(
    value: str | None, fallbacks: tuple[str | None, ...], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for variable in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("LANG", "C.UTF-8")
    assert i18n.request_language(value, *fallbacks) == expected


@pytest.mark.parametrize(
    ("header", "tags"),
    [
        ("", []),
        ("fi-FI,fi;q=0.9,en;q=0.8", ["fi-FI", "fi", "en"]),
        ("de;q=0.2, nb;q=0.8, *;q=0.1", ["nb", "de"]),
        ("nb;q=0,et", ["et"]),
        ("nn;q=x,en", ["en"]),
        ("nb\x00,<b>,en", ["en"]),
    ],
)
def test_accept_language(header: str, tags: list[str]) -> None:
    assert i18n.accept_language(header) == tags


def test_a_catalogue_for_a_language_we_lack_is_english() -> None:
    assert i18n.gettext("fi", "Wrong PIN.") == "Wrong PIN."
    assert i18n.gettext("no", "Wrong PIN.") == i18n.gettext("nb", "Wrong PIN.") != "Wrong PIN."


def _cli(*args: str, lang_env: str = "C.UTF-8") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    env["LANG"] = lang_env
    env["CARDBRIDGE_CONFIG"] = "/nonexistent/cardbridge-test/config.toml"
    return subprocess.run(
        [sys.executable, "-m", "cardbridge", *args], capture_output=True, text=True, env=env, timeout=60, check=False
    )


@pytest.mark.parametrize(
    ("flags", "lang_env", "expected"),
    [
        ((), "C.UTF-8", "Fant ikke programvaren for ID-kortet (PKCS#11-modulen)"),
        (("--lang", "nn"), "C.UTF-8", "Fann ikkje programvara for ID-kortet"),
        (("--lang", "en"), "nb_NO.UTF-8", "The ID card software (PKCS#11 module) was not found."),
        ((), "en_US.UTF-8", "The ID card software (PKCS#11 module) was not found."),
        # A system language we lack (Finnish, Estonian, Belgian) is English, not bokmål.
        ((), "fi_FI.UTF-8", "The ID card software (PKCS#11 module) was not found."),
        ((), "et_EE.UTF-8", "The ID card software (PKCS#11 module) was not found."),
        ((), "nl_BE.UTF-8", "The ID card software (PKCS#11 module) was not found."),
        ((), "no_NO.UTF-8", "Fant ikke programvaren for ID-kortet (PKCS#11-modulen)"),
        (("--lang", "nn"), "fi_FI.UTF-8", "Fann ikkje programvara for ID-kortet"),
    ],
)
def test_cli_errors_in_the_persons_language(flags: tuple[str, ...], lang_env: str, expected: str) -> None:
    result = _cli(*flags, "list", "--module", "/nonexistent/module.so", lang_env=lang_env)
    assert result.returncode == 7
    first, *rest = result.stderr.splitlines()
    assert first.startswith("error: MODULE_NOT_FOUND: ")
    assert expected in first or expected in result.stderr
    assert any("/nonexistent/module.so" in line for line in rest), "the technical detail is kept for support"


def test_cli_json_keeps_the_technical_message_and_adds_the_text() -> None:
    result = _cli("--lang", "nn", "list", "--json", "--module", "relative.so")
    error = json.loads(result.stdout)["error"]
    assert error["code"] == "MODULE_NOT_FOUND"
    assert error["message"] == "The PKCS#11 module path must be absolute: relative.so"
    assert error["text"] == i18n.error_text(Code.MODULE_NOT_FOUND, "nn")


@pytest.mark.parametrize(
    ("tag", "ours"),
    [
        ("nb", "nb"),
        ("nb-NO", "nb"),
        ("no", "nb"),
        ("no-NO", "nb"),
        ("nn-NO", "nn"),
        ("en-GB", "en"),
        ("EN_us", "en"),
        ("nb_NO.UTF-8", "nb"),
        ("de-DE", None),
        ("C.UTF-8", None),
    ],
)
def test_one_rule_maps_a_tag_to_our_language(tag: str, ours: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    from cardbridge.i18n import is_language_tag, our_language, request_language, resolve_language, system_language

    assert our_language(tag) == ours
    # A request's lang, the system locale and resolve_language agree with it.
    monkeypatch.delenv("LANGUAGE", raising=False)
    monkeypatch.setenv("LC_ALL", "nn_NO.UTF-8")
    assert resolve_language(tag) == (ours or "nn")
    if is_language_tag(tag):
        assert request_language(tag) == (ours or "nn")
    monkeypatch.setenv("LC_ALL", tag)
    assert system_language() == ours


def test_every_certificate_purpose_has_a_name() -> None:
    """``list`` and ``doctor`` name each certificate's purpose (a card's CA certificate is
    "other": a missing name made them fail with INTERNAL)."""
    from cardbridge.i18n.names import PURPOSES
    from cardbridge.model import Purpose

    assert set(PURPOSES) == {purpose.value for purpose in Purpose}
